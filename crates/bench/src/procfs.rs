//! Memory figures read from /proc: a process tree's RSS and PSS, kernel
//! socket counts and memory, and slab usage.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Maximum processes one tree walk sums, so that a server which forks
/// without bound cannot make a snapshot take minutes.
pub const TREE_PROCESSES_MAX: usize = 100_000;

/// RSS and PSS summed over a set of processes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessMemory {
    pub processes: u64,
    pub rss_bytes: u64,
    pub pss_bytes: u64,
}

/// Returns `roots` and all their descendants, leaving out `excluded` and
/// its descendants, from the ppid field of every /proc/PID/stat.
pub fn process_tree(roots: &[u32], excluded: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(parse_ppid)
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    walk_tree(roots, excluded, &children)
}

fn walk_tree(roots: &[u32], excluded: &[u32], children: &HashMap<u32, Vec<u32>>) -> Vec<u32> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue: Vec<u32> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        if excluded.contains(&pid) || !seen.insert(pid) || found.len() >= TREE_PROCESSES_MAX {
            continue;
        }
        found.push(pid);
        if let Some(list) = children.get(&pid) {
            queue.extend(list);
        }
    }
    found.sort_unstable();
    found
}

/// Returns the parent PID from the text of /proc/PID/stat. The command
/// name in brackets may contain spaces and brackets, so the fields are
/// counted from the last `)`.
fn parse_ppid(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Sums RSS and PSS over `pids` from /proc/PID/smaps_rollup. Processes
/// that exited meanwhile or cannot be read are left out of the count.
pub fn tree_memory(pids: &[u32]) -> ProcessMemory {
    let mut total = ProcessMemory::default();
    for &pid in pids {
        let path = format!("/proc/{pid}/smaps_rollup");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let fields = parse_kib_fields(&text);
        let (Some(rss), Some(pss)) = (fields.get("Rss"), fields.get("Pss")) else {
            continue;
        };
        total.processes += 1;
        total.rss_bytes += rss;
        total.pss_bytes += pss;
    }
    total
}

/// Parses `Name:   1234 kB` lines into bytes, as in smaps_rollup and
/// /proc/meminfo.
fn parse_kib_fields(text: &str) -> HashMap<String, u64> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(value), unit) = (
            parts.next().and_then(|v| v.parse::<u64>().ok()),
            parts.next(),
        ) else {
            continue;
        };
        let bytes = if unit == Some("kB") {
            value * 1024
        } else {
            value
        };
        fields.insert(name.trim().to_owned(), bytes);
    }
    fields
}

/// Counters from /proc/net/sockstat.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SocketStats {
    /// All sockets of the machine ("sockets: used").
    pub sockets_used: u64,
    /// TCP sockets in use ("TCP: inuse").
    pub tcp_in_use: u64,
    /// TCP socket buffer memory ("TCP: mem", in pages) in bytes.
    pub tcp_memory_bytes: u64,
}

pub fn read_socket_stats(page_size: u64) -> Option<SocketStats> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    Some(parse_sockstat(&text, page_size))
}

fn parse_sockstat(text: &str, page_size: u64) -> SocketStats {
    let mut stats = SocketStats::default();
    for line in text.lines() {
        let Some((section, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let value = |key: &str| {
            words
                .chunks(2)
                .find(|pair| pair[0] == key)
                .and_then(|pair| pair.get(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        match section {
            "sockets" => stats.sockets_used = value("used").unwrap_or(0),
            "TCP" => {
                stats.tcp_in_use = value("inuse").unwrap_or(0);
                stats.tcp_memory_bytes = value("mem").unwrap_or(0) * page_size;
            }
            _ => {}
        }
    }
    stats
}

/// Machine-wide TCP counters from /proc/net/netstat that explain slow
/// connects: a full listen queue drops a SYN, and the client resends it
/// after a second.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TcpCounters {
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub syn_retransmits: u64,
}

pub fn read_tcp_counters() -> Option<TcpCounters> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    parse_netstat(&text)
}

/// Parses the `TcpExt:` header line and the value line after it.
fn parse_netstat(text: &str) -> Option<TcpCounters> {
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let values: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|value| value.parse().unwrap_or(0))
        .collect();
    let get = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i).copied())
            .unwrap_or(0)
    };
    Some(TcpCounters {
        listen_overflows: get("ListenOverflows"),
        listen_drops: get("ListenDrops"),
        syn_retransmits: get("TCPSynRetrans"),
    })
}

/// Fields of /proc/meminfo, in bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryInfo {
    pub slab_bytes: u64,
    pub slab_unreclaimable_bytes: u64,
    pub page_tables_bytes: u64,
    /// MemTotal − MemAvailable: everything the machine uses, this tool
    /// included.
    pub used_bytes: u64,
}

pub fn read_memory_info() -> Option<MemoryInfo> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some(parse_meminfo(&text))
}

fn parse_meminfo(text: &str) -> MemoryInfo {
    let fields = parse_kib_fields(text);
    let get = |name: &str| fields.get(name).copied().unwrap_or(0);
    MemoryInfo {
        slab_bytes: get("Slab"),
        slab_unreclaimable_bytes: get("SUnreclaim"),
        page_tables_bytes: get("PageTables"),
        used_bytes: get("MemTotal").saturating_sub(get("MemAvailable")),
    }
}

/// Bytes in use per slab cache (active objects × object size), from
/// /proc/slabinfo, which only root may read.
pub fn read_slab_caches() -> Option<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(Path::new("/proc/slabinfo")).ok()?;
    Some(parse_slabinfo(&text))
}

fn parse_slabinfo(text: &str) -> BTreeMap<String, u64> {
    let mut caches = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("slabinfo") || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // name active_objs num_objs objsize objperslab pagesperslab : ...
        if fields.len() < 4 {
            continue;
        }
        let (Ok(active), Ok(size)) = (fields[1].parse::<u64>(), fields[3].parse::<u64>()) else {
            continue;
        };
        *caches.entry(fields[0].to_owned()).or_insert(0) += active * size;
    }
    caches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_after_odd_command_names() {
        assert_eq!(parse_ppid("42 (imap) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_ppid("42 (a (b) c) R 9 1 1"), Some(9));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn tree_walk_excludes_subtrees() {
        let mut children = HashMap::new();
        children.insert(1, vec![2, 3]);
        children.insert(2, vec![4]);
        children.insert(3, vec![5]);
        children.insert(5, vec![6]);
        assert_eq!(walk_tree(&[1], &[], &children), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(walk_tree(&[1], &[3], &children), vec![1, 2, 4]);
        assert_eq!(walk_tree(&[2, 5], &[], &children), vec![2, 4, 5, 6]);
    }

    #[test]
    fn sockstat_fields() {
        let text = "sockets: used 2345\nTCP: inuse 2000 orphan 0 tw 3 alloc 2004 mem 17\nUDP: inuse 1 mem 2\n";
        let stats = parse_sockstat(text, 4096);
        assert_eq!(stats.sockets_used, 2345);
        assert_eq!(stats.tcp_in_use, 2000);
        assert_eq!(stats.tcp_memory_bytes, 17 * 4096);
    }

    #[test]
    fn netstat_counters() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPSynRetrans\nTcpExt: 0 34 35 36\nIpExt: InNoRoutes\nIpExt: 0\n";
        let counters = parse_netstat(text).unwrap();
        assert_eq!(counters.listen_overflows, 34);
        assert_eq!(counters.listen_drops, 35);
        assert_eq!(counters.syn_retransmits, 36);
        assert_eq!(parse_netstat("IpExt: a\nIpExt: 1\n"), None);
    }

    #[test]
    fn meminfo_fields() {
        let text = "MemTotal:       1000 kB\nMemAvailable:    400 kB\nSlab:            30 kB\nSUnreclaim:      20 kB\nPageTables:       5 kB\n";
        let info = parse_meminfo(text);
        assert_eq!(info.used_bytes, 600 * 1024);
        assert_eq!(info.slab_bytes, 30 * 1024);
        assert_eq!(info.slab_unreclaimable_bytes, 20 * 1024);
        assert_eq!(info.page_tables_bytes, 5 * 1024);
    }

    #[test]
    fn slabinfo_lines() {
        let text = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\nTCP 100 120 2432 13 8 : tunables 0 0 0\nsock_inode_cache 50 60 832 39 8 : tunables\n";
        let caches = parse_slabinfo(text);
        assert_eq!(caches["TCP"], 100 * 2432);
        assert_eq!(caches["sock_inode_cache"], 50 * 832);
        assert_eq!(caches.len(), 2);
    }

    #[test]
    fn own_process_memory_readable() {
        let memory = tree_memory(&[std::process::id()]);
        assert_eq!(memory.processes, 1);
        assert!(memory.rss_bytes > 0);
        assert!(memory.pss_bytes > 0);
    }
}
