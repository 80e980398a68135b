package tree

import (
	"syscall"
	"time"
)

func statCtime(st *syscall.Stat_t) time.Time { return time.Unix(st.Ctim.Sec, st.Ctim.Nsec) }

func statRdev(st *syscall.Stat_t) uint64 { return st.Rdev }
