//! Token signing keys (RSA-2048, RS256) and the JWKS built from them.
//! Rotation keeps the previous keys published so tokens signed before it still validate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One signing key.
pub struct SigningKey {
    pub kid: String,
    pub n: String,
    pub e: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> anyhow::Result<SigningKey> {
        let key = rsa::PrivateKey::new(&mut rand::rng(), 2048)?;
        let pem = key.to_pkcs8_pem(LineEnding::LF)?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let AlgorithmParameters::RSA(params) = jwk.algorithm else {
            anyhow::bail!("generated key is not RSA");
        };
        let decoding = DecodingKey::from_rsa_components(&params.n, &params.e)?;
        // Microsoft's kid equals the x5t thumbprint; ours is a 20-byte digest of the modulus.
        let digest = Sha256::digest(params.n.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..20]);
        Ok(SigningKey {
            kid,
            n: params.n,
            e: params.e,
            encoding,
            decoding,
        })
    }

    /// Signs claims as an RS256 JWT with `typ: JWT` and this key's `kid` (and `x5t`).
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// The published key set: the current key first, then older ones still in their overlap.
pub struct KeySet {
    pub keys: Vec<SigningKey>,
}

impl KeySet {
    /// The key new tokens are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// Decoding key for a `kid`.
    pub fn decoding(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|k| k.kid == kid).map(|k| &k.decoding)
    }

    /// JWKS JSON; `issuer` is set per key as Microsoft does.
    pub fn jwks(&self, issuer: &str) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "RSA", "use": "sig", "kid": k.kid, "x5t": k.kid,
                    "n": k.n, "e": k.e, "issuer": issuer,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}
