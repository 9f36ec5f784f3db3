//! The benchmark's insert reducer (bench/modules.py), the twin of bench/modules_app.py.

use cosmictron::{reducer, table, ReducerContext};

#[table(name = "item", public)]
#[derive(Clone, Debug, Default)]
pub struct Item {
    #[primary_key]
    pub id: i64,
    pub name: String,
    pub qty: i64,
}

#[reducer]
pub fn add_item(_ctx: &ReducerContext, id: i64, name: String, qty: i64) {
    Item::insert(Item { id, name, qty });
}

#[reducer]
pub fn noop(_ctx: &ReducerContext) {}
