//! One-shot messages after an admin action (post/redirect/get): the POST handler stores a
//! [`Flash`] in the admin session and redirects; the next page the browser GETs takes it out
//! (so it shows once) and the layout renders it. Only samgate's own words go in, never input echoes.

use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::web::errors::PageError;

const FLASH_KEY: &str = "admin_flash";

/// Whether the action worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlashKind {
    /// Done.
    Success,
    /// Not done; the message says what to do next.
    Failure,
}

/// A message for the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// Success or failure.
    pub kind: FlashKind,
    /// What happened, and for a failure the next step.
    pub message: String,
}

impl Flash {
    /// An action that worked.
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }

    /// An action that did not; `message` names the next step.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Failure,
            message: message.into(),
        }
    }

    /// The CSS class of the message.
    pub fn class(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "success",
            FlashKind::Failure => "notice",
        }
    }

    /// `status` for a success (polite), `alert` for a failure.
    pub fn role(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "status",
            FlashKind::Failure => "alert",
        }
    }
}

/// Stores `flash` for the next page and redirects (303) to `to`.
pub async fn redirect_with(
    session: &Session,
    to: &str,
    flash: Flash,
) -> Result<Response, PageError> {
    session
        .insert(FLASH_KEY, flash)
        .await
        .map_err(PageError::internal)?;
    Ok(Redirect::to(to).into_response())
}

/// Takes the waiting message out of the session, if any.
pub async fn take(session: &Session) -> Result<Option<Flash>, PageError> {
    session
        .remove::<Flash>(FLASH_KEY)
        .await
        .map_err(PageError::internal)
}
