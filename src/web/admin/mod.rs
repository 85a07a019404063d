//! Admin UI for CPV staff (being written).
