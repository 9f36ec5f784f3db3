//! Misbehaving reducers for the sandbox tests (tests/module/test_wasm_server.py): each must
//! fail only its own call, roll back what it wrote, and say why.

use cosmictron::{reducer, table, ReducerContext};

#[table(name = "note", public)]
#[derive(Clone, Debug, Default)]
pub struct Note {
    #[primary_key]
    #[auto_inc]
    pub id: i64,
    pub text: String,
}

#[reducer]
pub fn add(_ctx: &ReducerContext, text: String) -> i64 {
    Note::insert(Note { text, ..Default::default() }).id
}

/// Writes, then asks for more memory than the sandbox grants.
#[reducer]
pub fn allocate(_ctx: &ReducerContext, bytes: u64) -> u64 {
    Note::insert(Note { text: "before allocating".to_string(), ..Default::default() });
    let mut v: Vec<u8> = Vec::with_capacity(bytes as usize);
    v.push(1);
    v.len() as u64 + v.capacity() as u64
}

/// Writes, then panics.
#[reducer]
pub fn explode(_ctx: &ReducerContext) {
    Note::insert(Note { text: "before panicking".to_string(), ..Default::default() });
    panic!("the guest gave up");
}

/// Writes, then never returns.
#[reducer]
pub fn spin(_ctx: &ReducerContext) {
    Note::insert(Note { text: "before spinning".to_string(), ..Default::default() });
    let mut x: u64 = 1;
    loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        if x == 0 {
            break;
        }
    }
}
