package esemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Repository formats the emulator can write (Options.RepositoryFormat).
// Elasticsearch writes a repository in the format of the oldest snapshot
// it still holds, whatever its own version: a 7.17 or 8.x cluster that
// took over a repository holding a snapshot from before 7.6 keeps writing
// the numeric layout until that snapshot is deleted. The layouts are
// described in docs/ELASTICSEARCH.md; 5.6, 6.8 and 7.10 were compared with
// repositories real Elasticsearch of those versions wrote.
const (
	Format56 = "5.6" // numeric shard index-N, blobs __0, __1… (base 36), index metadata per snapshot
	Format68 = "6.8" // numeric shard index-N, __<uuid> blobs, index metadata per snapshot, incompatible-snapshots
	// Format76: shard_generations (uuids) and v__ virtual files, index
	// metadata still per snapshot (7.6 to 7.8). Put together from the
	// source; no real repository of these versions was at hand.
	Format76 = "7.6"
	// Format710: shard_generations (uuids), v__ virtual files, index
	// metadata deduplicated through index_metadata_identifiers.
	Format710 = "7.10"
	// FormatCurrent (the default): 7.10 plus the repository uuid,
	// cluster_id and snapshot times (7.12+), as 7.17 and 8.x write it.
	FormatCurrent = "current"
)

// repoFormat is what a repository format changes in the writer.
type repoFormat struct {
	name             string
	numericShardGens bool // no shard_generations; the shard's highest index-N counts
	counterBlobNames bool // data blobs named __<base-36 counter> (5.x)
	metaBySnapshot   bool // indices/<id>/meta-<snapshot uuid>.dat, no identifiers
	virtualFiles     bool // segments_N and .si kept in the metadata as v__ (7.x)
	repoUUID         bool // uuid, cluster_id, snapshot times in index-N (7.12+)
	snapshotVersion  bool // snapshots carry "version" (7.x)
	incompatibleFile bool // a root incompatible-snapshots blob (6.x)
}

func parseFormat(name string) (repoFormat, error) {
	switch name {
	case Format56:
		return repoFormat{name: name, numericShardGens: true, counterBlobNames: true, metaBySnapshot: true}, nil
	case Format68:
		return repoFormat{name: name, numericShardGens: true, metaBySnapshot: true, incompatibleFile: true}, nil
	case Format76:
		return repoFormat{name: name, virtualFiles: true, snapshotVersion: true, metaBySnapshot: true}, nil
	case Format710:
		return repoFormat{name: name, virtualFiles: true, snapshotVersion: true}, nil
	case FormatCurrent, "":
		return repoFormat{name: FormatCurrent, virtualFiles: true, snapshotVersion: true, repoUUID: true}, nil
	}
	return repoFormat{}, fmt.Errorf("esemu: unknown repository format %q (want %s, %s, %s, %s or %s)", name, Format56, Format68, Format76, Format710, FormatCurrent)
}

// nextShardGen names the shard index file that follows old: index-(N+1)
// in the numeric layout, a fresh uuid otherwise.
func (f repoFormat) nextShardGen(old *string) string {
	if !f.numericShardGens {
		return newUUID()
	}
	if old == nil || *old == "" {
		return "0"
	}
	n, err := strconv.ParseInt(*old, 10, 64)
	if err != nil {
		return "0"
	}
	return strconv.FormatInt(n+1, 10)
}

// nextBlobName names a new data blob of a shard whose index file lists
// files: __<uuid>, or in 5.x __ and the next base-36 counter.
func (f repoFormat) nextBlobName(files []fileInfo, written int) string {
	if !f.counterBlobNames {
		return "__" + newUUID()
	}
	next := int64(0)
	for _, fi := range files {
		if n, err := strconv.ParseInt(strings.TrimPrefix(fi.Name, "__"), 36, 64); err == nil && n >= next {
			next = n + 1
		}
	}
	return "__" + strconv.FormatInt(next+int64(written), 36)
}

// numericShardGens fills the shard generations of a repository written in
// the numeric layout from the disk, as Elasticsearch finds them: the
// highest index-N in each shard directory.
func numericShardGens(loc string, d *repoData) {
	for _, rdi := range d.Indices {
		if len(rdi.ShardGenerations) > 0 {
			continue
		}
		idir := filepath.Join(loc, "indices", rdi.ID)
		dirs, _ := os.ReadDir(idir)
		shards := 0 // a shard that failed in every snapshot has no directory
		for _, d := range dirs {
			if n, err := strconv.Atoi(d.Name()); err == nil && d.IsDir() && n >= shards {
				shards = n + 1
			}
		}
		for s := range shards {
			entries, _ := os.ReadDir(filepath.Join(idir, strconv.Itoa(s)))
			best := int64(-1)
			for _, e := range entries {
				if g, ok := strings.CutPrefix(e.Name(), "index-"); ok {
					if n, err := strconv.ParseInt(g, 10, 64); err == nil && n > best {
						best = n
					}
				}
			}
			var gen *string
			if best >= 0 {
				g := strconv.FormatInt(best, 10)
				gen = &g
			}
			rdi.ShardGenerations = append(rdi.ShardGenerations, gen)
		}
	}
}
