//! STUB
use super::StoreError;
pub struct SqliteStore;
impl SqliteStore { pub async fn open(_url: &str) -> Result<Self, StoreError> { Err(StoreError::Backend("stub".into())) } }
#[async_trait::async_trait]
impl super::Store for SqliteStore {
    async fn get(&self, _k: &str) -> Result<Option<Vec<u8>>, StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn put(&self, _k: &str, _v: &[u8], _t: Option<std::time::Duration>) -> Result<(), StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn put_if_absent(&self, _k: &str, _v: &[u8], _t: Option<std::time::Duration>) -> Result<bool, StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn put_if_newer(&self, _k: &str, _v: &[u8], _ver: i64, _t: Option<std::time::Duration>) -> Result<bool, StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn take(&self, _k: &str) -> Result<Option<Vec<u8>>, StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn delete_if_equals(&self, _k: &str, _e: &[u8]) -> Result<bool, StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn delete(&self, _k: &str) -> Result<(), StoreError> { Err(StoreError::Backend("stub".into())) }
    async fn ping(&self) -> Result<(), StoreError> { Err(StoreError::Backend("stub".into())) }
}
