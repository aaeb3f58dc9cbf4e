//! Edge agent: local MQTT listener, disk buffer and uplink to the hub. Not
//! yet built.
