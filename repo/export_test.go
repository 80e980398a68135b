package repo

// Rounds reports how many rounds of pack reads the prefetch took.
func (tp *TreePrefetch) Rounds() int { return tp.rounds }
