//! The conformance module in Rust: the twin of tests/module/conformance/app.py (same
//! tables, types and reducers, in the same order). Change one, change the other.
#![allow(non_camel_case_types, clippy::too_many_arguments)]

use cosmictron::{
    ctype, log, log_info, reducer, table, Bytes, Identity, Level, ReducerContext, ScheduleAt,
    TimeDuration, Timestamp, Vector,
};

#[ctype]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    RED,
    GREEN,
    BLUE,
}

impl Default for Color {
    fn default() -> Self {
        Color::RED
    }
}

#[ctype]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[table(name = "sample", public)]
#[derive(Clone, Debug, Default)]
pub struct Sample {
    #[primary_key]
    #[auto_inc]
    pub id: i64,
    #[unique]
    pub name: String,
    pub small: u8,
    #[index]
    pub level: i16,
    #[index(hash)]
    pub qty: u32,
    pub big: i128,
    pub huge: u128,
    pub ratio: f32,
    pub score: f64,
    pub flag: bool,
    pub data: Bytes,
    pub who: Identity,
    pub at: Timestamp,
    pub span: TimeDuration,
    pub note: Option<String>,
    pub tags: Vec<i64>,
    pub color: Color,
    pub point: Point,
    pub embedding: Vector<3>,
}

#[table(name = "account", public)]
#[derive(Clone, Debug, Default)]
pub struct Account {
    #[primary_key]
    pub name: String,
    pub balance: i64,
}

#[table(name = "audit_event", public, event)]
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    #[primary_key]
    #[auto_inc]
    pub id: i64,
    pub message: String,
}

#[table(name = "tick", scheduled = "on_tick")]
#[derive(Clone, Debug, Default)]
pub struct Tick {
    #[primary_key]
    #[auto_inc]
    pub id: i64,
    pub scheduled_at: ScheduleAt,
    pub label: String,
}

#[reducer]
pub fn store(
    _ctx: &ReducerContext,
    name: String,
    small: u8,
    level: i16,
    qty: u32,
    big: i128,
    huge: u128,
    ratio: f32,
    score: f64,
    flag: bool,
    data: Bytes,
    who: Identity,
    at: Timestamp,
    span: TimeDuration,
    note: Option<String>,
    tags: Vec<i64>,
    color: Color,
    point: Point,
    embedding: Vector<3>,
) -> i64 {
    let row = Sample::insert(Sample {
        id: 0,
        name: name.clone(),
        small,
        level,
        qty,
        big,
        huge,
        ratio,
        score,
        flag,
        data,
        who,
        at,
        span,
        note,
        tags,
        color,
        point,
        embedding,
    });
    log_info!("stored {} as {}", name, row.id);
    row.id
}

#[reducer]
pub fn rename(_ctx: &ReducerContext, old: String, new: String) -> bool {
    match Sample::find_by_name(&old) {
        None => false,
        Some(row) => {
            Sample::update_by_id(Sample { name: new, ..row });
            true
        }
    }
}

#[reducer]
pub fn remove(_ctx: &ReducerContext, name: String) -> bool {
    Sample::delete_by_name(&name)
}

#[reducer]
pub fn levels(_ctx: &ReducerContext, low: i16, high: i16) -> Vec<String> {
    Sample::range_by_level(Some(&low), Some(&high), true).into_iter().map(|r| r.name).collect()
}

#[reducer]
pub fn count_of(_ctx: &ReducerContext, qty: u32) -> i64 {
    Sample::filter_by_qty(&qty).len() as i64
}

#[reducer]
pub fn total(_ctx: &ReducerContext) -> i64 {
    Sample::count() as i64 + Account::iter().len() as i64
}

#[reducer]
pub fn transfer(_ctx: &ReducerContext, source: String, target: String, amount: i64) -> Result<i64, String> {
    let src = Account::find_by_name(&source);
    let dst = Account::find_by_name(&target);
    let (src, dst) = match (src, dst) {
        (Some(s), Some(d)) => (s, d),
        (None, _) => return Err(format!("no such account: {}", source)),
        (_, None) => return Err(format!("no such account: {}", target)),
    };
    Account::update_by_name(Account { name: source.clone(), balance: src.balance - amount });
    Account::update_by_name(Account { name: target.clone(), balance: dst.balance + amount });
    let after = Account::find_by_name(&source).expect("the source account exists");
    if after.balance < 0 {
        log(Level::Warning, &format!("refused: {} would owe {}", source, -after.balance));
        return Err(format!("insufficient funds: {} has {}", source, src.balance));
    }
    AuditEvent::insert(AuditEvent { message: format!("moved {} from {} to {}", amount, source, target), ..Default::default() });
    Ok(after.balance)
}

#[reducer]
pub fn duplicate(_ctx: &ReducerContext, name: String) {
    Account::insert(Account { name, balance: 1 });
}

#[reducer]
pub fn schedule(ctx: &ReducerContext, label: String) {
    Tick::insert(Tick { scheduled_at: ScheduleAt::At(ctx.timestamp), label, ..Default::default() });
}

#[reducer]
pub fn on_tick(_ctx: &ReducerContext, row: Tick) {
    AuditEvent::insert(AuditEvent { message: format!("tick {}", row.label), ..Default::default() });
}

#[reducer]
pub fn roll(ctx: &ReducerContext) -> u64 {
    ctx.random_u64s(1)[0]
}

#[reducer]
pub fn whoami(ctx: &ReducerContext) -> Identity {
    ctx.sender
}

#[reducer]
pub fn now(ctx: &ReducerContext) -> Timestamp {
    ctx.timestamp
}

#[reducer(init)]
pub fn on_init(_ctx: &ReducerContext) {
    Account::insert(Account { name: "alice".to_string(), balance: 100 });
    Account::insert(Account { name: "bob".to_string(), balance: 0 });
    log_info!("initialised");
}

#[reducer(client_connected)]
pub fn on_connect(_ctx: &ReducerContext) {
    AuditEvent::insert(AuditEvent { message: "connected".to_string(), ..Default::default() });
}

#[reducer(client_disconnected)]
pub fn on_disconnect(_ctx: &ReducerContext) {
    AuditEvent::insert(AuditEvent { message: "disconnected".to_string(), ..Default::default() });
}
