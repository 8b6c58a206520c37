//! Elixir handlers of host functions, kept as terms in an environment of
//! their own.
//!
//! A registry only grows and has an id that is never reused, so a process
//! that runs its handlers can keep a copy of them (see `Wasmbeam.HostCall`):
//! a host call names its handler by registry and index, and nothing is
//! copied per call. Registering a handler equal to one already there gives
//! the existing index, so instantiating the same imports again into one
//! store (or retrying a failed instantiation) adds nothing.

use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Env, OwnedEnv, Term};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Handlers {
    pub id: u64,
    saved: Mutex<SavedHandlers>,
}

static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);

struct SavedHandlers {
    env: OwnedEnv,
    terms: Vec<SavedTerm>,
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers {
            id: NEXT_REGISTRY_ID.fetch_add(1, Ordering::Relaxed),
            saved: Mutex::new(SavedHandlers {
                env: OwnedEnv::new(),
                terms: Vec::new(),
            }),
        }
    }
}

impl Handlers {
    /// Every handler registered so far, as a tuple in `env`.
    pub fn all<'a>(&self, env: Env<'a>) -> Term<'a> {
        let saved = self.saved.lock();
        let terms: Vec<Term<'a>> = saved.env.run(|owned| {
            saved
                .terms
                .iter()
                .map(|t| t.load(owned).in_env(env))
                .collect()
        });
        rustler::types::tuple::make_tuple(env, &terms)
    }

    /// The index of `handler` in the registry, added if no equal term is
    /// there yet.
    pub fn register(&self, handler: Term) -> usize {
        let mut saved = self.saved.lock();
        let raw = handler.as_c_arg();
        let found = saved.env.run(|owned| {
            saved.terms.iter().position(|t| {
                // SAFETY: both are live terms (one in the registry's own
                // environment, one in the caller's); comparing reads them
                // and copies nothing.
                unsafe { rustler::sys::enif_is_identical(t.load(owned).as_c_arg(), raw) == 1 }
            })
        });
        if let Some(index) = found {
            return index;
        }
        let term = saved.env.save(handler);
        saved.terms.push(term);
        saved.terms.len() - 1
    }
}
