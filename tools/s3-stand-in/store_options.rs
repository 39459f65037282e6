//! The object store's S3 settings for a running stand-in, shared by the tests that open
//! `custos_store::Objects` on it directly (included with `#[path]` beside `stand_in.rs`, which
//! itself depends on no Custos crate so the KMS tests can include it too).

impl crate::stand_in::StandIn {
    /// The store's S3 settings for this stand-in (endpoint, region, credentials, plain HTTP).
    pub fn options(&self) -> custos_store::S3Options {
        custos_store::S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some(crate::stand_in::REGION.into()),
            allow_http: true,
            access_key_id: Some(crate::stand_in::ACCESS_KEY_ID.into()),
            secret_access_key: Some(crate::stand_in::SECRET_ACCESS_KEY.into()),
            ..custos_store::S3Options::default()
        }
    }
}
