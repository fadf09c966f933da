//! Several instances sharing one database and store (filled in below).
