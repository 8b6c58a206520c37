//! The states of resources a component imports and Elixir implements:
//! each is an Elixir term, kept in an environment of its own (freed when
//! the resource is dropped), named by the representation Wasmtime gives
//! the guest's handle.

use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Env, OwnedEnv, Term};
use std::collections::HashMap;

#[derive(Default)]
pub struct HostStates {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u32,
    states: HashMap<u32, (OwnedEnv, SavedTerm)>,
}

impl HostStates {
    /// Keeps `state`; returns its representation.
    pub fn insert(&self, state: Term) -> u32 {
        let owned = OwnedEnv::new();
        let saved = owned.save(state);
        let mut inner = self.inner.lock();
        // Representations are reused only after 2^32 resources, and then
        // never while one is still held.
        loop {
            inner.next = inner.next.wrapping_add(1);
            let rep = inner.next;
            if let std::collections::hash_map::Entry::Vacant(slot) = inner.states.entry(rep) {
                slot.insert((owned, saved));
                return rep;
            }
        }
    }

    /// The state of `rep`, copied into `env` (a borrow), or taken out
    /// (`take`: the resource was dropped or handed to the host).
    pub fn get<'a>(&self, env: Env<'a>, rep: u32, take: bool) -> Option<Term<'a>> {
        let mut inner = self.inner.lock();
        if take {
            let (owned, saved) = inner.states.remove(&rep)?;
            Some(owned.run(|o| saved.load(o).in_env(env)))
        } else {
            let (owned, saved) = inner.states.get(&rep)?;
            Some(owned.run(|o| saved.load(o).in_env(env)))
        }
    }

    /// Forgets the state of `rep` (a resource made while decoding an answer
    /// that was then refused or declined: the guest never got it).
    pub fn remove(&self, rep: u32) {
        self.inner.lock().states.remove(&rep);
    }

    /// How many states are held (resources not dropped yet).
    pub fn count(&self) -> usize {
        self.inner.lock().states.len()
    }
}
