package prune

// SetRepackWindow sets repackWindow for a test and returns the old value.
func SetRepackWindow(n int64) int64 {
	old := repackWindow
	repackWindow = n
	return old
}

// SetRepackBatch sets repackBatch for a test and returns the old value.
func SetRepackBatch(n int) int {
	old := repackBatch
	repackBatch = n
	return old
}
