//! The `signing_keys` table (the signing-key set).

use sea_orm::entity::prelude::*;

/// A row of `signing_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// Key id (RFC 7638 thumbprint).
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// JOSE `alg`.
    pub alg: String,
    /// Created and published, Unix ms.
    pub created_at: i64,
    /// May sign from, Unix ms.
    pub signs_from: i64,
    /// Withdrawn at, Unix ms.
    pub retired_at: Option<i64>,
    /// The public key, SPKI PEM.
    pub public_pem: String,
    /// The private key, sealed (`adapters::crypto::key_seal`).
    pub sealed_private: Vec<u8>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
