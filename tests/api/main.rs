mod confirm;
mod helpers;
mod manage;
mod operations;
mod schema;
mod smtp;
mod subscribe;
