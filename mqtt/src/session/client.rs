//! Client-side MQTT session state machine (being written).
