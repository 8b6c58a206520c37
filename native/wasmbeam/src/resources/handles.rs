//! Handles to what lives in a store: functions, memories, globals, tables
//! and exception tags. Each keeps its store alive.

use crate::resources::store::StoreResource;
use rustler::ResourceArc;
use std::sync::Arc;
use wasmbeam_runtime::domain::signature::Signature;
use wasmtime::{Func, Global, GlobalType, Memory, Table, Tag};

pub struct FuncResource {
    pub store: ResourceArc<StoreResource>,
    pub func: Func,
    pub sig: Arc<Signature>,
}

#[rustler::resource_impl]
impl rustler::Resource for FuncResource {}

pub struct MemoryResource {
    pub store: ResourceArc<StoreResource>,
    pub memory: Memory,
}

#[rustler::resource_impl]
impl rustler::Resource for MemoryResource {}

pub struct GlobalResource {
    pub store: ResourceArc<StoreResource>,
    pub global: Global,
    pub ty: GlobalType,
}

#[rustler::resource_impl]
impl rustler::Resource for GlobalResource {}

pub struct TableResource {
    pub store: ResourceArc<StoreResource>,
    pub table: Table,
}

#[rustler::resource_impl]
impl rustler::Resource for TableResource {}

/// An exception tag, exported so that other instances can import it.
pub struct TagResource {
    pub store: ResourceArc<StoreResource>,
    pub tag: Tag,
}

#[rustler::resource_impl]
impl rustler::Resource for TagResource {}
