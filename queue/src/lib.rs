//! The embedded persistent backend queue: segment logs, the Kafka wire
//! protocol and consumer groups. Not yet built.
