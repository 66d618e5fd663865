//! Signatures: Koor's `X-Koor-Signature` (hex HMAC-SHA256 of the body) and Standard
//! Webhooks' `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Koor-Signature`: lowercase hex HMAC-SHA256 of `body`, keyed by the secret's bytes.
pub fn koor_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret.as_bytes(), &[body]))
}

/// The Standard Webhooks key: a `whsec_`-prefixed secret is base64-decoded; any other
/// string (or an undecodable one) is used as raw bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    if let Some(encoded) = secret.strip_prefix("whsec_")
        && let Ok(bytes) = STANDARD.decode(encoded)
    {
        return bytes;
    }
    secret.as_bytes().to_vec()
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn standard_signature(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let sig = mac(
        &standard_key(secret),
        &[message_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn koor_signature_is_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            koor_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(standard_key("plain"), b"plain");
        assert_eq!(standard_key("whsec_!!"), b"whsec_!!");
    }
}
