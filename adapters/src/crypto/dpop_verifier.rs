//! The [`DpopVerifier`] port on our own JWS code ([`super::dpop`]).

use application::ports::DpopVerifier;
use domain::dpop::{Jkt, ProofClaims};

/// Verifies DPoP proofs with [`super::dpop::verify_proof`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DpopJws;

impl DpopVerifier for DpopJws {
    fn verify(&self, compact: &str) -> Result<ProofClaims, &'static str> {
        let proof =
            super::dpop::verify_proof(compact).map_err(super::dpop::ProofRefused::reason)?;
        Ok(ProofClaims {
            jkt: Jkt(proof.jkt),
            jti: proof.jti,
            htm: proof.htm,
            htu: proof.htu,
            iat: proof.iat,
            ath: proof.ath,
        })
    }
}
