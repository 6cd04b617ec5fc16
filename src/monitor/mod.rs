//! Live monitoring: the event bus every change is published on.

pub mod bus;

pub use bus::{EventBus, LiveEvent, Subscription};
