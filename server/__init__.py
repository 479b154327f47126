"""The Switchboard server: a pure routing core with thin transport, store and bus layers around it."""
