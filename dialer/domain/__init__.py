"""Pure domain core: no IO, no sockets, no database. Every function takes `now` explicitly."""
