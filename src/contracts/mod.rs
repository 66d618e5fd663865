//! API contracts (API §11): specs with `"kind": "contract"`, payload checks and live tests.
//!
//! Owns: no table (contracts are specs, owned by the `SpecRegistry`). The checks are pure
//! functions over the parsed contract; `/test` calls the target through reqwest with a
//! 10 s timeout. Violation paths are dotted and rooted at the direction
//! (`request.address.city`, `response[0].id`); compliance reuses
//! [`Contract::undefined_endpoints`].

mod model;
mod routes;

pub use model::*;
pub use routes::{ContractClient, TEST_TIMEOUT, check_payload, routes};
