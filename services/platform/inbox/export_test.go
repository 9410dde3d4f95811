package inbox

// Record notes messageID as processed within tx, or returns ErrDuplicate.
var Record = record
