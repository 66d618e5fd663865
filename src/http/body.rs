//! Body extractors that enforce the size limit (413) and parse JSON whatever the
//! request's `Content-Type` says (400 on malformed JSON or the wrong shape).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::Deserializer;
use serde::de::{DeserializeOwned, Visitor};

use super::gate::{body_limit, declared_length};
use crate::error::ApiError;

/// The raw request body, at most the configured limit.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let declared = declared_length(req.headers()).unwrap_or(0) as usize;
        let mut payload = payload.take();
        Box::pin(async move {
            let mut buf = BytesMut::with_capacity(declared.min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(RawBody(buf.freeze()))
        })
    }
}

/// A JSON request body parsed into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = RawBody::from_request(req, payload);
        Box::pin(async move {
            let RawBody(bytes) = raw.await?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Parses `bytes` as JSON into `T`, mapping every failure to a 400 that says what is wrong.
///
/// The top level must be of the kind `T` asks for: where `T` is a struct the body must be
/// a JSON object (serde's derive would also accept an array of the fields in order, which
/// API §1.3 forbids).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; a JSON body is required",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(ObjectsForStructs(&mut de))
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A deserializer that reads a struct only from a map (an object), never from a sequence;
/// every other request goes to the wrapped deserializer unchanged.
struct ObjectsForStructs<D>(D);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* visitor)
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsForStructs<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Two {
        a: String,
        b: i64,
    }

    #[test]
    fn a_struct_is_read_from_an_object_only() {
        let ok: Two = parse_json(br#"{"a": "x", "b": 1}"#).unwrap();
        assert_eq!(
            ok,
            Two {
                a: "x".into(),
                b: 1
            }
        );
        for bad in [&br#"["x", 1]"#[..], b"\"x\"", b"7", b"null", b"true"] {
            let e = parse_json::<Two>(bad).unwrap_err();
            assert_eq!(
                actix_web::ResponseError::status_code(&e).as_u16(),
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lists_and_free_values_keep_their_kind() {
        let list: Vec<Two> = parse_json(br#"[{"a": "x", "b": 1}]"#).unwrap();
        assert_eq!(list.len(), 1);
        assert!(parse_json::<Vec<Two>>(br#"{"a": "x", "b": 1}"#).is_err());
        let any: serde_json::Value = parse_json(b"[1, 2]").unwrap();
        assert_eq!(any, serde_json::json!([1, 2]));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(parse_json::<serde_json::Value>(b"{} x").is_err());
        assert!(parse_json::<serde_json::Value>(b" {} ").is_ok());
    }
}
