//! Write Cosmictron modules in Rust.
//!
//! ```ignore
//! use cosmictron::{reducer, table, ReducerContext};
//!
//! #[table(name = "agent_message", public)]
//! #[derive(Clone, Debug, Default)]
//! pub struct AgentMessage {
//!     #[primary_key]
//!     #[auto_inc]
//!     pub id: i64,
//!     pub role: String,
//!     pub content: String,
//! }
//!
//! #[reducer]
//! pub fn run_agent(_ctx: &ReducerContext, prompt: String) -> i64 {
//!     AgentMessage::insert(AgentMessage { role: "user".into(), content: prompt, ..Default::default() }).id
//! }
//! ```
//!
//! Build for `wasm32-unknown-unknown` and deploy the `.wasm` with `cosmictron-cli deploy`.
//! The macros describe each table and reducer in a `cosmictron_describe` custom section
//! and export one function per reducer; this crate is the runtime those exports call
//! (module ABI v1, docs/reference/module-abi.md).
//!
//! Crossings into the host are the cost, so writes whose result is not needed (an insert
//! into a table without `auto_inc`, an `update_by_*`) are buffered and travel with the
//! next read, or in the reducer's result. A buffered write that fails (a duplicate key)
//! fails the reducer; use `try_insert` to handle the failure yourself.

pub mod msgpack;
mod values;

use std::cell::RefCell;
use std::fmt;

pub use cosmictron_macros::{ctype, reducer, table};
pub use msgpack::{Reader, Writer};
pub use values::{
    Bytes, ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp, Value, Vector,
};

const OP_INSERT: u64 = 0;
const OP_DELETE_BY_KEY: u64 = 1;
const OP_DELETE_ROW: u64 = 2;
const OP_UPDATE: u64 = 3;
const OP_FIND: u64 = 4;
const OP_FILTER: u64 = 5;
const OP_RANGE: u64 = 6;
const OP_ITER: u64 = 7;
const OP_COUNT: u64 = 8;
const OP_LOG: u64 = 9;
const OP_RANDOM: u64 = 10;
const OP_FAIL: u64 = 11;

/// An error a host operation returned, or a reducer's own failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The error's class: the host's (`Conflict`, `NotFound`, `InvalidRequest`) or yours.
    pub kind: String,
    pub message: String,
}

impl Error {
    pub fn new(kind: &str, message: &str) -> Self {
        Error { kind: kind.to_string(), message: message.to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a reducer receives first: the caller and the call's fixed facts.
pub struct ReducerContext {
    pub sender: Identity,
    pub connection_id: Option<ConnectionId>,
    /// When the transaction runs; the same value for the whole call.
    pub timestamp: Timestamp,
    /// The database's own identity.
    pub identity: Identity,
    /// A seed derived from the transaction, for a deterministic RNG of your own.
    pub seed: u64,
}

impl ReducerContext {
    /// `n` random 64-bit values from the transaction's RNG (as Python's `ctx.rng`).
    pub fn random_u64s(&self, n: u32) -> Vec<u64> {
        let mut w = Writer::new();
        w.array(2);
        w.uint(OP_RANDOM);
        w.uint(n as u64);
        let answer = run_op(w.buf);
        let mut r = Reader::new(&answer);
        match Vec::<u64>::decode(&mut r) {
            Ok(v) => v,
            Err(e) => fail(&e.message),
        }
    }
}

/// A table row type; implemented by `#[table]`.
pub trait Table: Value {
    const NAME: &'static str;
}

// -- the host --------------------------------------------------------------------------

#[link(wasm_import_module = "cosmictron")]
extern "C" {
    fn ops(request: *const u8, request_len: u32, out: *mut u8, out_cap: u32) -> i64;
    fn take(out: *mut u8, out_cap: u32) -> i64;
}

struct State {
    pending: Vec<u8>,
    pending_count: usize,
    out: Vec<u8>,
    result: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        pending: Vec::new(),
        pending_count: 0,
        out: vec![0u8; 64 * 1024],
        result: Vec::new(),
    });
}

/// Send a batch to the host; returns the answer document.
fn call_host(request: &[u8]) -> Vec<u8> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let cap = state.out.len() as u32;
        let n = unsafe { ops(request.as_ptr(), request.len() as u32, state.out.as_mut_ptr(), cap) };
        if n >= 0 {
            return state.out[..n as usize].to_vec();
        }
        let mut big = vec![0u8; (-n) as usize];
        let m = unsafe { take(big.as_mut_ptr(), big.len() as u32) };
        big.truncate(m.max(0) as usize);
        big
    })
}

/// Buffer one encoded operation (a write whose result is not needed).
fn buffer_op(op: Vec<u8>) {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        state.pending.extend_from_slice(&op);
        state.pending_count += 1;
    })
}

fn take_pending() -> (Vec<u8>, usize) {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let count = state.pending_count;
        state.pending_count = 0;
        (std::mem::take(&mut state.pending), count)
    })
}

/// Run one operation now (after the buffered ones); its result, or the host's error.
fn try_op(op: Vec<u8>) -> Result<Vec<u8>, Error> {
    let (pending, count) = take_pending();
    let mut w = Writer::new();
    w.array(count + 1);
    w.raw(&pending);
    w.raw(&op);
    let answer = call_host(&w.buf);
    let mut r = Reader::new(&answer);
    let parse = |r: &mut Reader| -> Result<Result<Vec<u8>, (usize, Error)>, Error> {
        let n = r.array()?;
        let status = r.integer()?;
        let results = r.array()?;
        let mut last = (0, 0);
        for _ in 0..results {
            let start = r.position();
            r.skip()?;
            last = (start, r.position());
        }
        if status == 0 && n == 2 {
            return Ok(Ok(r.slice(last.0, last.1).to_vec()));
        }
        let position = r.integer()? as usize;
        let message = r.str()?.to_string();
        let kind = r.str()?.to_string();
        Ok(Err((position, Error { kind, message })))
    };
    match parse(&mut r) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err((position, error))) => {
            if position < count {
                // A buffered write failed: the reducer fails, as a Python one would.
                fail_with(&error.kind, &error.message)
            }
            Err(error)
        }
        Err(e) => fail(&format!("the host's answer could not be read: {}", e.message)),
    }
}

fn run_op(op: Vec<u8>) -> Vec<u8> {
    match try_op(op) {
        Ok(v) => v,
        Err(e) => fail_with(&e.kind, &e.message),
    }
}

/// Stop the reducer: it fails with `kind: message` and its transaction rolls back.
pub fn fail_with(kind: &str, message: &str) -> ! {
    std::panic::panic_any(Error::new(kind, message))
}

/// Stop the reducer with a `ReducerError`.
pub fn fail(message: &str) -> ! {
    fail_with("ReducerError", message)
}

fn op_header(w: &mut Writer, n: usize, code: u64) {
    w.array(n);
    w.uint(code);
}

fn decode_or_fail<T: Value>(bytes: &[u8]) -> T {
    match T::decode(&mut Reader::new(bytes)) {
        Ok(v) => v,
        Err(e) => fail(&format!("the host's answer could not be read: {}", e.message)),
    }
}

// -- table operations (the macros' generated methods call these) ------------------------

#[doc(hidden)]
pub fn __insert<T: Table>(row: T, needs_result: bool) -> T {
    let mut w = Writer::new();
    op_header(&mut w, 3, OP_INSERT);
    w.str(T::NAME);
    row.encode(&mut w);
    if needs_result {
        decode_or_fail(&run_op(w.buf))
    } else {
        buffer_op(w.buf);
        row
    }
}

#[doc(hidden)]
pub fn __try_insert<T: Table>(row: T) -> Result<T, Error> {
    let mut w = Writer::new();
    op_header(&mut w, 3, OP_INSERT);
    w.str(T::NAME);
    row.encode(&mut w);
    try_op(w.buf).map(|bytes| decode_or_fail(&bytes))
}

#[doc(hidden)]
pub fn __delete_row<T: Table>(row: &T) -> bool {
    let mut w = Writer::new();
    op_header(&mut w, 3, OP_DELETE_ROW);
    w.str(T::NAME);
    row.encode(&mut w);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __iter<T: Table>() -> Vec<T> {
    let mut w = Writer::new();
    op_header(&mut w, 2, OP_ITER);
    w.str(T::NAME);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __count<T: Table>() -> u64 {
    let mut w = Writer::new();
    op_header(&mut w, 2, OP_COUNT);
    w.str(T::NAME);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __find<T: Table, K: Value>(accessor: &str, key: &K) -> Option<T> {
    let mut w = Writer::new();
    op_header(&mut w, 4, OP_FIND);
    w.str(T::NAME);
    w.str(accessor);
    key.encode(&mut w);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __update<T: Table>(accessor: &str, row: T) -> T {
    let mut w = Writer::new();
    op_header(&mut w, 4, OP_UPDATE);
    w.str(T::NAME);
    w.str(accessor);
    row.encode(&mut w);
    buffer_op(w.buf);
    row
}

#[doc(hidden)]
pub fn __delete_by_key<T: Table, K: Value>(accessor: &str, key: &K) -> bool {
    let mut w = Writer::new();
    op_header(&mut w, 4, OP_DELETE_BY_KEY);
    w.str(T::NAME);
    w.str(accessor);
    key.encode(&mut w);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __filter<T: Table, K: Value>(accessor: &str, key: &K) -> Vec<T> {
    let mut w = Writer::new();
    op_header(&mut w, 4, OP_FILTER);
    w.str(T::NAME);
    w.str(accessor);
    key.encode(&mut w);
    decode_or_fail(&run_op(w.buf))
}

#[doc(hidden)]
pub fn __range<T: Table, K: Value>(
    accessor: &str,
    start: Option<&K>,
    stop: Option<&K>,
    inclusive: bool,
) -> Vec<T> {
    let mut w = Writer::new();
    op_header(&mut w, 6, OP_RANGE);
    w.str(T::NAME);
    w.str(accessor);
    start.encode(&mut w);
    stop.encode(&mut w);
    w.bool(inclusive);
    decode_or_fail(&run_op(w.buf))
}

// -- logging ---------------------------------------------------------------------------

/// Log levels, as the module log names them.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Critical = 4,
}

/// Write a line to the database's module log (buffered: it costs no crossing).
pub fn log(level: Level, message: &str) {
    let mut w = Writer::new();
    op_header(&mut w, 3, OP_LOG);
    w.uint(level as u64);
    w.str(message);
    buffer_op(w.buf);
}

/// `log::info!`-style helpers.
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log($crate::Level::Info, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log($crate::Level::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log($crate::Level::Error, &format!($($t)*)) } }

// -- the exports the host calls ------------------------------------------------------------

/// A buffer for the host's call frames; the host keeps it (module ABI, WebAssembly binding).
#[no_mangle]
pub extern "C" fn cosmictron_alloc(size: u32) -> u32 {
    let mut buffer = Vec::<u8>::with_capacity(size as usize);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer as u32
}

/// What a reducer's body produced, before encoding.
#[doc(hidden)]
pub enum Outcome {
    Committed(Vec<u8>),
    Failed(Error),
}

#[doc(hidden)]
pub fn __ok<T: Value>(value: &T) -> Outcome {
    let mut w = Writer::new();
    value.encode(&mut w);
    Outcome::Committed(w.buf)
}

#[doc(hidden)]
pub fn __ok_nil() -> Outcome {
    Outcome::Committed(vec![0xc0])
}

#[doc(hidden)]
pub fn __err<E: fmt::Display>(error: E) -> Outcome {
    Outcome::Failed(Error::new("ReducerError", &error.to_string()))
}

fn report_panic(info: &std::panic::PanicInfo<'_>) {
    let payload = info.payload();
    let mut w = Writer::new();
    w.array(1);
    op_header(&mut w, 3, OP_FAIL);
    // A `fail_with` carries its error: the host reports it as the reducer's failure.
    if let Some(error) = payload.downcast_ref::<Error>() {
        w.str(&error.message);
        w.str(&error.kind);
        call_host(&w.buf);
        return;
    }
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    };
    let where_ = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    w.str(&format!("panicked{}: {}", where_, message));
    w.str("panic");
    call_host(&w.buf);
}

/// Run a reducer export: read the frame, run `body`, write the result frame.
#[doc(hidden)]
pub fn __run(
    frame: u32,
    length: u32,
    body: fn(&ReducerContext, &mut Reader) -> Result<Outcome, Error>,
) -> u64 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(report_panic)));
    let bytes = unsafe { std::slice::from_raw_parts(frame as *const u8, length as usize) };
    take_pending(); // a trapped call's leftovers never leak into the next one
    let mut r = Reader::new(bytes);
    let outcome = (|| -> Result<Outcome, Error> {
        let n = r.array()?;
        if n < 7 {
            return Err(Error::new("GuestDecodeError", "a call frame has 7 elements"));
        }
        r.skip()?; // the reducer's position: this export is the reducer
        let args_start = r.position();
        r.skip()?;
        let args_end = r.position();
        let sender = Identity::decode(&mut r)?;
        let connection_id = Option::<ConnectionId>::decode(&mut r)?;
        let timestamp = Timestamp::decode(&mut r)?;
        let identity = Identity::decode(&mut r)?;
        let seed = u64::decode(&mut r)?;
        let ctx = ReducerContext { sender, connection_id, timestamp, identity, seed };
        let mut args = Reader::new(r.slice(args_start, args_end));
        args.array()?;
        body(&ctx, &mut args)
    })();
    // A `fail_with` inside the body traps under panic=abort (the hook has reported it).
    let (pending, count) = take_pending();
    let mut w = Writer::new();
    match outcome {
        Ok(Outcome::Committed(value)) => {
            w.array(3);
            w.uint(0);
            w.raw(&value);
            w.array(count);
            w.raw(&pending);
        }
        Ok(Outcome::Failed(error)) | Err(error) => {
            w.array(4);
            w.uint(1);
            w.str(&error.message);
            w.array(count);
            w.raw(&pending);
            w.str(&error.kind);
        }
    }
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        state.result = w.buf;
        ((state.result.as_ptr() as u64) << 32) | state.result.len() as u64
    })
}

// -- out of memory -----------------------------------------------------------------------

/// The system allocator, plus a report to the host when an allocation fails, so that a
/// huge allocation fails its call as `GuestOutOfMemory` rather than an anonymous trap.
struct ReportingAllocator;

fn report_oom(size: usize) {
    // No allocation is possible here: the document is assembled on the stack.
    let mut doc = [0u8; 96];
    let head = b"\x91\x93\x0b";
    let text_prefix = b"out of memory: allocating ";
    let text_suffix = b" bytes failed";
    let mut digits = [0u8; 20];
    let mut n = size;
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let text_len = text_prefix.len() + d + text_suffix.len();
    let mut at = 0;
    for b in head.iter() {
        doc[at] = *b;
        at += 1;
    }
    doc[at] = 0xd9;
    doc[at + 1] = text_len as u8;
    at += 2;
    for b in text_prefix.iter() {
        doc[at] = *b;
        at += 1;
    }
    for i in (0..d).rev() {
        doc[at] = digits[i];
        at += 1;
    }
    for b in text_suffix.iter() {
        doc[at] = *b;
        at += 1;
    }
    let kind = b"out_of_memory";
    doc[at] = 0xa0 | kind.len() as u8;
    at += 1;
    for b in kind.iter() {
        doc[at] = *b;
        at += 1;
    }
    let mut answer = [0u8; 64];
    unsafe {
        ops(doc.as_ptr(), at as u32, answer.as_mut_ptr(), answer.len() as u32);
    }
}

unsafe impl std::alloc::GlobalAlloc for ReportingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc(layout);
        if p.is_null() {
            report_oom(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc_zeroed(layout);
        if p.is_null() {
            report_oom(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(p, layout)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let q = std::alloc::System.realloc(p, layout, size);
        if q.is_null() {
            report_oom(size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: ReportingAllocator = ReportingAllocator;
