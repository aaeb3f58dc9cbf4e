//! Alerts over the API: the ones in force and the recent raise/clear history.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AdminState;

pub async fn list(State(state): State<AdminState>) -> Json<Value> {
    let a = &state.broker.alerts;
    Json(json!({ "active": a.active(), "history": a.history() }))
}
