// Package command is the database-dump source: it runs a dump command
// (pg_dump, mariadb-dump, expdp, …) for the archiver and a restore command
// (pg_restore, psql, mariadb, impdp) on restore, and turns everything that
// can go wrong with them — a non-zero exit, a signal, a missing binary, an
// empty dump, a consumer that gave up — into an error that names the command
// and quotes the end of its stderr.
//
// A dump reaches the archiver in one of three ways, chosen by what the tool
// can do:
//
//   - Start: the tool writes to stdout; Stream is an io.Reader of it, with
//     Stream.Wait as the component's Finish check. Nothing lands on disk.
//   - StartWithPipe: the tool insists on a file name ({path} in argv); it
//     gets a named pipe, read by a Stream. Nothing lands on disk either.
//   - RunToDir: the tool writes a directory ({dir} in argv: pg_dump -Fd,
//     expdp's %U files); the caller archives the directory as a tree with
//     package tree, then DirDump.Done empties it if Spec.Clean asks.
//
// With the archiver, a stream component is, in outline:
//
//	s, err := command.Start(ctx, command.Spec{Argv: []string{"pg_dump", "-Fc", "-Z0", "app"}})
//	if err != nil { … }
//	defer s.Close() // once Backup has returned: kills a dump left unread
//	meta := s.Meta()
//	comp := archive.ComponentSource{Name: "db", Reader: s, Meta: meta,
//		Finish: func(ctx context.Context) error {
//			err := s.Wait(ctx)
//			maps.Copy(meta, s.Meta()) // the exit status, now known
//			return err
//		}}
//
// The Close matters: a backup that fails elsewhere never calls Finish, and
// a dump nobody reads blocks on its full pipe until it is killed. (Started
// from ComponentSource.Start instead, the caller keeps the Stream to close
// it after Backup.)
//
// Compressed dumps defeat deduplication (a one-row change reshuffles every
// byte after it), so the first bytes are recognised (Sniff) and the caller
// can warn with CompressionAdvice.
//
// Commands run without a shell unless Spec.Shell asks, in a session of their
// own so that cancellation kills the whole process group (a shell's
// children too) and so that a tool cannot stop the backup by prompting for
// a password on the terminal. Secrets belong in Spec.Env or in files the
// tool reads (PGPASSFILE, --defaults-file), never in argv: argv is recorded
// in the snapshot's metadata.
package command
