//! The JSON form of every stored value, the same in both stores (redb values, etcd values),
//! with errors that name the table and key.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Decodes one stored value; `table` and `key` name it in the error.
pub fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        source,
    })
}

/// Encodes one value to store; `table` and `key` name it in the error.
pub fn encode<T: Serialize>(
    table: &'static str,
    key: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        table,
        key: key.to_owned(),
        source,
    })
}
