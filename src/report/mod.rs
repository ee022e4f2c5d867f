//! Reporting: what the user reads after a run (the terminal table now; charts and HTML later),
//! built from the saved results only.

pub mod table;
