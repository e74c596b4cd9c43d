"""A shard (a set of markets with one writer) whose command log is a replicated NATS JetStream stream.

`log`: the stream (append fenced by the expected last sequence, reading, the runner's `CommandLog`);
`lease`: leadership, a lease in a JetStream key-value bucket renewed by compare-and-set;
`snapshots`: engine snapshots in a JetStream object store; `replica`: the process (standby that applies
the stream hot, leader that serves commands); `client`: a gateway's side; `status`: what operators read.
"""
