//! The emulator's demo world as tests name it: its partners, their admins and their customers.

use uuid::Uuid;

/// A partner of the demo world (`Seed::demo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoPartner {
    /// "Contoso Partners", the partner most tests consent.
    Contoso,
    /// "Fabrikam IT", the other partner, for scoping and isolation.
    Fabrikam,
}

impl DemoPartner {
    /// The partner's Microsoft tenant id.
    pub fn tenant(self) -> Uuid {
        match self {
            Self::Contoso => ms_emulator::DEMO_CONTOSO,
            Self::Fabrikam => ms_emulator::DEMO_FABRIKAM,
        }
    }

    /// The UPN of the partner's admin agent, who consents.
    pub fn admin(self) -> &'static str {
        match self {
            Self::Contoso => ms_emulator::DEMO_CONTOSO_ADMIN,
            Self::Fabrikam => ms_emulator::DEMO_FABRIKAM_ADMIN,
        }
    }

    /// The name the CPV's staff give the invitation.
    pub fn invitation_name(self) -> &'static str {
        match self {
            Self::Contoso => "Contoso",
            Self::Fabrikam => "Fabrikam",
        }
    }

    /// The partner's demo customer `index` (the demo world has 1 and 2 for each partner).
    pub fn customer(self, index: u128) -> Uuid {
        let partner: u128 = match self {
            Self::Contoso => 0xc0,
            Self::Fabrikam => 0xfa,
        };
        Uuid::from_u128(0xc0570000_0000_4000_8000_000000000000 | (partner << 8) | index)
    }
}
