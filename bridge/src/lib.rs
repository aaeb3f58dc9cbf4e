//! Bridge between MQTT topics and the backend queue (rules, reliable retry,
//! dead letters, delayed messages, commands down to devices). Not yet built.
