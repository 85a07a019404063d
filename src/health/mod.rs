//! The owner of every health state: a partner's (`partner`) and each of its customers' access
//! (`customer`). Other modules report evidence (a refusal, a success, a sync's findings); only
//! these modules decide the next state, and they write it with its audit record and webhook
//! event in the caller's transaction. Depends only on `db`, `domain`, `identity` error classes and
//! `webhooks`, so the broker and the directory can report to it.

pub mod customer;
pub mod partner;
