package eventbus

// groupStream is one stream the consumer reads: a partition's main or
// retries stream, or the replay stream (whose entries are settled with
// the shared partition's keys).
type groupStream struct {
	name    string
	part    int  // the partition whose keys settle its entries
	retries bool // a retries stream: one handler's retry per entry
}

// readStreams lists the streams the consumer reads, built once: every
// partition's main stream, the replay stream, then every partition's
// retries stream (with one partition: main, replay, retries).
func (c *Consumer) readStreams() []groupStream {
	k := c.bus.rdb.Keys()
	var out []groupStream
	for p := range k.Partitions() {
		out = append(out, groupStream{name: k.MainPartition(p), part: p})
	}
	out = append(out, groupStream{name: k.Replay(), part: k.SharedPartition()})
	for p := range k.Partitions() {
		out = append(out, groupStream{name: k.Partition(p).Retries(c.bus.cfg.Group), part: p, retries: true})
	}
	return out
}

// readSets splits the consumer's streams into the sets one XREADGROUP
// reads: all of them on a single node, one set per partition (one hash
// slot) on a Redis Cluster, where one command cannot span slots. Each set
// gets its own blocking reader.
func (c *Consumer) readSets() [][]string {
	if !c.bus.rdb.Cluster() {
		return [][]string{c.streams()}
	}
	sets := make([][]string, c.bus.rdb.Keys().Partitions())
	for _, s := range c.groupStreams {
		sets[s.part] = append(sets[s.part], s.name)
	}
	return sets
}

// streams returns the names of the streams the consumer reads, in
// readStreams' order.
func (c *Consumer) streams() []string {
	out := make([]string, len(c.groupStreams))
	for i, s := range c.groupStreams {
		out[i] = s.name
	}
	return out
}

// stream returns the consumer's description of one of its streams.
func (c *Consumer) stream(name string) groupStream {
	for _, s := range c.groupStreams {
		if s.name == name {
			return s
		}
	}
	return groupStream{name: name, part: c.bus.rdb.Keys().SharedPartition()} // not one of ours
}
