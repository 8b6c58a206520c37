//! Atoms shared by the resources and the NIF entry points.

rustler::atoms! {
    ok,
    error,
    nil,
    opaque,
    r#ref = "ref",
    name,
    params,
    results,
    r#type = "type",
    mutable,
    store,
    id,
    host_call,
    memory_read,
    memory_write,
    memory_size,
    global_get,
    global_set,
    fuel,
    call,
    define_func,
    wait,
    wasmbeam_wake,
    wasmbeam_output,
    io_wait,
    stdout,
    stderr,
    discard,
    capture,
    stream,
    wasi,
    exit_code,
    idle,
    bad_answer,
    wasmbeam_store_idle,
    wasmbeam_compiled,
    compiling,
    define_global,
    define_memory,
    define_table,
    done,
    r#continue = "continue",
    // value types
    i32,
    i64,
    f32,
    f64,
    v128,
    funcref,
    externref,
    anyref,
    exnref,
    contref,
    // float specials
    nan,
    infinity,
    neg_infinity,
    // extern kinds
    func,
    memory,
    table,
    global,
    tag,
    r#const = "const",
    var,
    // struct keys
    __struct__,
    __exception__,
    kind,
    message,
    trap,
    backtrace,
    offset,
    func_index,
    func_name,
    module_offset,
    min,
    max,
    memory64,
    shared,
    page_size,
    element,
    // compiler strategies and levels
    cranelift,
    winch,
    pulley,
    none,
    speed,
    speed_and_size,
}

/// Builds `%Module{field: value, ...}` (an Elixir struct is a map with a
/// `__struct__` key naming its module).
pub fn elixir_struct<'a>(
    env: rustler::Env<'a>,
    module: &str,
    fields: &[(rustler::Atom, rustler::Term<'a>)],
) -> rustler::Term<'a> {
    use rustler::Encoder;
    let module = rustler::Atom::from_str(env, module).expect("valid atom");
    let mut pairs = Vec::with_capacity(fields.len() + 1);
    pairs.push((__struct__().encode(env), module.encode(env)));
    pairs.extend(fields.iter().map(|(key, value)| (key.encode(env), *value)));
    rustler::Term::map_from_pairs(env, &pairs).expect("distinct keys")
}
