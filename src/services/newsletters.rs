//! Use cases: newsletters (being moved here from the route handlers).
