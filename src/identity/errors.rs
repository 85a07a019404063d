//! Classification of Microsoft identity platform errors (being written).
