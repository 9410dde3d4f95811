package access

// Verifications counts the tokens a checked in full, those it remembered
// aside.
func (a *Authenticator) Verifications() int64 { return a.verifications.Load() }
