//! Use cases: subscribers (being moved here from the route handlers).
