//! Who is calling ([`Principal`]): a token's name, role and bindings, what the role may do,
//! and why its connections end ([`Ending`]).

use crate::wire::{JobRecord, Role};
use tokio_util::sync::CancellationToken;

/// Who made a request.
#[derive(Debug)]
pub struct Principal {
    /// The token's name; jobs submitted with it are owned by this name.
    pub name: String,
    pub role: Role,
    /// The only slave name this token may serve as, if it is bound to one.
    pub slave_name: Option<String>,
    /// When the token stops being accepted (ms since the epoch); `None`: never.
    pub expires_ms: Option<u64>,
    /// Cancelled when the token is revoked or expires: every connection opened with it ends.
    pub revoked: CancellationToken,
}

impl Principal {
    /// Whether the token's lifetime is over at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| now_ms >= at)
    }

    /// Why the connections opened with this token are being closed, once `revoked` fired.
    pub fn ending(&self) -> Ending {
        if self.expired(crate::hub::now_ms()) {
            Ending::Expired
        } else {
            Ending::Revoked
        }
    }

    /// Sees every job (admin, viewer) or only its own (user).
    pub fn can_see(&self, job: &JobRecord) -> bool {
        match self.role {
            Role::Admin | Role::Viewer => true,
            Role::User => job.owner.as_deref() == Some(self.name.as_str()),
            Role::Slave => false,
        }
    }

    /// May type into, resize or cancel the job.
    pub fn can_control(&self, job: &JobRecord) -> bool {
        match self.role {
            Role::Admin => true,
            Role::User => self.can_see(job),
            Role::Viewer | Role::Slave => false,
        }
    }

    pub fn can_submit(&self) -> bool {
        matches!(self.role, Role::Admin | Role::User)
    }
}

/// Why a token's connections are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Revoked,
    Expired,
}

impl Ending {
    /// For the peer's error message and close reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Revoked => "token revoked",
            Ending::Expired => "token expired",
        }
    }
}
