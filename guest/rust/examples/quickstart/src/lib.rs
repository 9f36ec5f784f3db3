//! The guide's agent example, in Rust: one table and one reducer that returns a value.

use cosmictron::{log_info, reducer, table, ReducerContext};

#[table(name = "agent_message", public, event)]
#[derive(Clone, Debug, Default)]
pub struct AgentMessage {
    #[primary_key]
    #[auto_inc]
    pub id: i64,
    pub role: String,
    pub content: String,
}

#[reducer]
pub fn run_agent(_ctx: &ReducerContext, prompt: String) -> i64 {
    let row = AgentMessage::insert(AgentMessage {
        role: "user".to_string(),
        content: prompt,
        ..Default::default()
    });
    log_info!("agent message {} stored", row.id);
    row.id
}
