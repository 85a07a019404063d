//! Client assertions (certificate credentials, protocol page §1.6): a JWT signed with the key of a
//! certificate registered on the app; `aud` = the token URL, `iss` = `sub` = client id, `exp`,
//! header `x5t#S256`. PS256 and RS256 are accepted (whether Microsoft still takes RS256: UNCONFIRMED).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::errors::AadError;
use crate::state::App;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// DER bytes inside a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD.decode(body).ok()
}

/// base64url SHA-256 of the credential's DER (a certificate's `x5t#S256`).
pub fn thumbprint_s256(pem: &str) -> Option<String> {
    pem_der(pem).map(|der| URL_SAFE_NO_PAD.encode(Sha256::digest(&der)))
}

/// Verifies the assertion for `app`; `audiences` are the accepted token URLs; `now` is unix seconds.
pub fn verify(app: &App, assertion: &str, audiences: &[String], now: i64) -> Result<(), AadError> {
    let malformed = || AadError::invalid_client(50027, "JWT token is invalid or malformed.");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(AadError::invalid_client(
            700027,
            "Client assertion failed signature validation. [Reason - The signing algorithm is not supported.]",
        ));
    }
    let wanted = header.x5t_s256.clone();
    let candidates: Vec<&String> = app
        .certificates
        .iter()
        .filter(|pem| match &wanted {
            Some(t) => thumbprint_s256(pem).as_deref() == Some(t.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(AadError::invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                wanted.unwrap_or_default()
            ),
        ));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = candidates
        .iter()
        .filter_map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()).ok())
        .find_map(|key| jsonwebtoken::decode::<Value>(assertion, &key, &validation).ok())
        .ok_or_else(|| {
            AadError::invalid_client(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key used to sign the assertion did not verify it.]",
            )
        })?
        .claims;
    let client = app.client_id.to_string();
    let claim = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if !claim("iss").eq_ignore_ascii_case(&client) || !claim("sub").eq_ignore_ascii_case(&client) {
        return Err(AadError::invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|x| x.eq_ignore_ascii_case(a)),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x.eq_ignore_ascii_case(a))),
        _ => false,
    };
    if !aud_ok {
        return Err(AadError::invalid_client(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claim("aud")
            ),
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(malformed)?;
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    if now > exp + 300 || nbf > now + 300 {
        return Err(AadError::invalid_client(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}
