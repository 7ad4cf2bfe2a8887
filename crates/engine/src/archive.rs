//! Model archives (being written).
