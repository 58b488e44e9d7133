//! The hierarchy of feature groups behind Owen values ([`super::owen`]): how it is given
//! ([`Hierarchy`]), the tree over the groups, the terms of the exact Owen formula, orders
//! consistent with the tree, and the automatic tree (neighbouring groups merged bottom-up).

use crate::engine::Groups;
use crate::permutation::SplitMix64;
use crate::shapley::exact::shapley_weights;
use attrib_core::{AttribError, Result, TorchResultExt};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use tch::{Kind, Tensor};

/// How the groups are arranged in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Hierarchy {
    /// Built from the mask: on image inputs (`[N, C, H, W]` or `[N, H, W]`) spatially adjacent
    /// groups are merged bottom-up into a binary tree, the adjacent pair with the fewest elements
    /// first; on flat inputs (`[N, F]`) groups neighbouring in group-id order are merged the same
    /// way. Groups that touch no other cluster are merged smallest first.
    #[default]
    Auto,
    /// Every group a child of the root: the Owen values are the Shapley values.
    Flat,
    /// `(child, parent)` pairs: a child is a group id or an inner-node id, a parent an inner-node
    /// id (not a group id); a node without an entry is a child of the root. Inner-node ids are
    /// any integers that are not group ids.
    Parents(Vec<(i64, i64)>),
}

impl std::str::FromStr for Hierarchy {
    type Err = AttribError;
    /// `auto`, `flat`, a list `P0,P1,…` of parent ids, one per group in increasing group id
    /// (two levels), or `CHILD:PARENT,…` pairs (any depth); `root` or `-1` as a parent means
    /// the root.
    fn from_str(s: &str) -> Result<Hierarchy> {
        let s = s.trim();
        match s {
            "auto" => return Ok(Hierarchy::Auto),
            "flat" => return Ok(Hierarchy::Flat),
            _ => {}
        }
        let bad = |what: &str| {
            AttribError::param(
                "hierarchy",
                format!("`{what}` is not understood; use auto, flat, parent ids one per group (`10,10,11,11`) or CHILD:PARENT pairs (`0:10,1:10,10:20`)"),
            )
        };
        let num = |t: &str| -> Result<Option<i64>> {
            match t.trim() {
                "root" | "-1" => Ok(None),
                t => t.parse::<i64>().map(Some).map_err(|_| bad(t)),
            }
        };
        let items: Vec<&str> = s.trim_start_matches('[').trim_end_matches(']').split(',').filter(|t| !t.trim().is_empty()).collect();
        if items.is_empty() {
            return Err(bad(s));
        }
        if items.iter().all(|t| t.contains(':')) {
            let mut pairs = Vec::new();
            for t in items {
                let (c, p) = t.split_once(':').ok_or_else(|| bad(t))?;
                let c = num(c)?.ok_or_else(|| bad(t))?;
                if let Some(p) = num(p)? {
                    pairs.push((c, p));
                }
            }
            return Ok(Hierarchy::Parents(pairs));
        }
        if items.iter().any(|t| t.contains(':')) {
            return Err(bad(s));
        }
        // One parent per group: child ids are filled in against the groups (negative = root).
        let parents = items.iter().map(|t| num(t).map(|p| p.unwrap_or(i64::MIN))).collect::<Result<Vec<_>>>()?;
        Ok(Hierarchy::Parents(parents.into_iter().enumerate().map(|(j, p)| (PER_GROUP - j as i64, p)).collect()))
    }
}

/// Marks the child of a per-group parent list: `PER_GROUP − j` is the `j`-th group.
const PER_GROUP: i64 = i64::MIN / 2;

/// A rooted tree over `g` groups: node 0 is the root, leaves carry a group position.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    /// Children of every node.
    pub children: Vec<Vec<usize>>,
    /// The group position of a leaf; `None` for inner nodes.
    pub leaf: Vec<Option<usize>>,
}

impl Tree {
    /// All groups children of the root.
    pub fn flat(g: usize) -> Tree {
        let mut t = Tree { children: vec![(1..=g).collect()], leaf: vec![None] };
        for j in 0..g {
            t.children.push(Vec::new());
            t.leaf.push(Some(j));
        }
        t
    }

    /// The tree of `(child, parent)` pairs over the group ids `groups` (sorted).
    pub fn from_parents(pairs: &[(i64, i64)], groups: &[i64]) -> Result<Tree> {
        let bad = |m: String| AttribError::param("hierarchy", m);
        let is_group = |id: i64| groups.binary_search(&id).is_ok();
        let mut parent: BTreeMap<i64, i64> = BTreeMap::new();
        let per_group = pairs.iter().any(|&(c, _)| c <= PER_GROUP);
        if per_group && pairs.len() != groups.len() {
            return Err(bad(format!("{} parent ids for {} feature groups; give one per group, in increasing group id", pairs.len(), groups.len())));
        }
        for &(c, p) in pairs {
            let c = if c <= PER_GROUP { groups[(PER_GROUP - c) as usize] } else { c };
            if p == i64::MIN {
                continue;
            }
            if is_group(p) {
                return Err(bad(format!("node {c} has parent {p}, a feature group; parents must be ids of inner nodes (not group ids)")));
            }
            if parent.insert(c, p).is_some() {
                return Err(bad(format!("node {c} is given two parents")));
            }
        }
        for &c in parent.keys() {
            if !is_group(c) && !parent.values().any(|&p| p == c) {
                return Err(bad(format!("node {c} is neither a feature group nor the parent of one (the groups are {groups:?})")));
            }
        }
        // Inner nodes: every id used as a parent.
        let inner: BTreeSet<i64> = parent.values().copied().collect();
        let mut index: HashMap<i64, usize> = HashMap::new();
        let mut t = Tree { children: vec![Vec::new()], leaf: vec![None] };
        for (j, &id) in groups.iter().enumerate() {
            index.insert(id, t.leaf.len());
            t.children.push(Vec::new());
            t.leaf.push(Some(j));
        }
        for &id in &inner {
            index.insert(id, t.leaf.len());
            t.children.push(Vec::new());
            t.leaf.push(None);
        }
        for (&id, &node) in &index {
            let up = parent.get(&id).map_or(0, |p| index[p]);
            t.children[up].push(node);
        }
        for c in &mut t.children {
            c.sort_unstable();
        }
        // Every node must reach the root: a cycle leaves its nodes unreachable.
        let reached = t.preorder().len();
        if reached != t.leaf.len() {
            return Err(bad("the parent links form a cycle".into()));
        }
        Ok(t)
    }

    /// Nodes in depth-first order from the root.
    fn preorder(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(self.children[n].iter().rev());
        }
        out
    }

    /// The group positions below each node, as bitsets of `words` 64-bit words.
    fn leaf_sets(&self, words: usize) -> Vec<Vec<u64>> {
        let mut sets = vec![vec![0u64; words]; self.leaf.len()];
        for &n in self.preorder().iter().rev() {
            if let Some(j) = self.leaf[n] {
                sets[n][j / 64] |= 1 << (j % 64);
            }
            for &c in &self.children[n] {
                let below = sets[c].clone();
                for (a, b) in sets[n].iter_mut().zip(&below) {
                    *a |= b;
                }
            }
        }
        sets
    }

    /// For every leaf (by group position): the path `(parent, child)` from the root down.
    fn paths(&self, g: usize) -> Vec<Vec<(usize, usize)>> {
        let mut up = vec![usize::MAX; self.leaf.len()];
        for (n, cs) in self.children.iter().enumerate() {
            for &c in cs {
                up[c] = n;
            }
        }
        let mut paths = vec![Vec::new(); g];
        for (n, leaf) in self.leaf.iter().enumerate() {
            if let Some(j) = *leaf {
                let mut path = Vec::new();
                let mut c = n;
                while c != 0 {
                    path.push((up[c], c));
                    c = up[c];
                }
                path.reverse();
                paths[j] = path;
            }
        }
        paths
    }

    /// Coalition differences per row that the exact formula needs: `Σ_i Π_k 2^(m_k − 1)`
    /// (saturating).
    pub fn exact_terms(&self, g: usize) -> u64 {
        self.paths(g)
            .iter()
            .map(|path| path.iter().fold(1u64, |acc, &(p, _)| acc.saturating_mul(1u64 << (self.children[p].len() - 1).min(63))))
            .fold(0u64, u64::saturating_add)
    }

    /// The depth of the deepest leaf.
    pub fn depth(&self, g: usize) -> usize {
        self.paths(g).iter().map(Vec::len).max().unwrap_or(0)
    }

    /// An order of the group positions with the leaves of every node consecutive, children
    /// shuffled by `rng` at every node.
    fn consistent_order(&self, rng: &mut SplitMix64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            if let Some(j) = self.leaf[n] {
                out.push(j as i64);
            }
            let mut cs = self.children[n].clone();
            rng.shuffle(&mut cs);
            stack.extend(cs.iter().rev());
        }
        out
    }
}

/// `n` orders consistent with `tree` from `seed`; with `antithetic`, every second one the
/// reverse of the one before.
pub(crate) fn consistent_orders(tree: &Tree, seed: u64, n: usize, antithetic: bool) -> Vec<Vec<i64>> {
    let mut rng = SplitMix64(seed);
    let mut out: Vec<Vec<i64>> = Vec::with_capacity(n);
    while out.len() < n {
        let next = if antithetic && out.len() % 2 == 1 { out[out.len() - 1].iter().rev().copied().collect() } else { tree.consistent_order(&mut rng) };
        out.push(next);
    }
    out
}

/// The coalitions of the exact formula, each once (`[m, g]` Bool; row 0 the empty coalition,
/// row 1 the full one), and its terms: group position, row of `Q ∪ {i}`, row of `Q`, weight.
pub(crate) struct ExactTerms {
    pub z: Tensor,
    pub leaf: Vec<i64>,
    pub with: Vec<i64>,
    pub without: Vec<i64>,
    pub weight: Vec<f64>,
}

/// Enumerate the terms of the exact Owen formula over `tree`.
pub(crate) fn exact_terms(tree: &Tree, g: usize) -> Result<ExactTerms> {
    let words = g.div_ceil(64).max(1);
    let sets = tree.leaf_sets(words);
    let mut ids: HashMap<Vec<u64>, i64> = HashMap::new();
    let mut rows: Vec<bool> = Vec::new();
    let mut id_of = |set: &[u64], rows: &mut Vec<bool>| -> i64 {
        let next = ids.len() as i64;
        *ids.entry(set.to_vec()).or_insert_with(|| {
            rows.extend((0..g).map(|j| set[j / 64] >> (j % 64) & 1 == 1));
            next
        })
    };
    id_of(&vec![0u64; words], &mut rows);
    id_of(&sets[0], &mut rows);
    let mut out = ExactTerms { z: Tensor::new(), leaf: Vec::new(), with: Vec::new(), without: Vec::new(), weight: Vec::new() };
    let weights: HashMap<usize, Vec<f64>> = tree.children.iter().map(|c| c.len()).filter(|&m| m > 0).map(|m| (m, shapley_weights(m))).collect();
    for (j, path) in tree.paths(g).iter().enumerate() {
        // Partial coalitions with their weights, level by level.
        let mut partial: Vec<(Vec<u64>, f64)> = vec![(vec![0u64; words], 1.0)];
        for &(p, c) in path {
            let sibs: Vec<usize> = tree.children[p].iter().copied().filter(|&s| s != c).collect();
            let w = &weights[&tree.children[p].len()];
            let mut next = Vec::with_capacity(partial.len() << sibs.len());
            for (set, wt) in &partial {
                for bits in 0u64..(1u64 << sibs.len()) {
                    let mut s = set.clone();
                    for (k, &sib) in sibs.iter().enumerate() {
                        if bits >> k & 1 == 1 {
                            for (a, b) in s.iter_mut().zip(&sets[sib]) {
                                *a |= b;
                            }
                        }
                    }
                    next.push((s, wt * w[bits.count_ones() as usize]));
                }
            }
            partial = next;
        }
        for (mut set, wt) in partial {
            let without = id_of(&set, &mut rows);
            set[j / 64] |= 1 << (j % 64);
            let with = id_of(&set, &mut rows);
            out.leaf.push(j as i64);
            out.with.push(with);
            out.without.push(without);
            out.weight.push(wt);
        }
    }
    let m = (rows.len() / g.max(1)) as i64;
    out.z = Tensor::f_from_slice(&rows).and_then(|t| t.f_reshape([m, g as i64])).ctx("coalitions of the hierarchy")?;
    Ok(out)
}

/// The automatic hierarchy: clusters merged two at a time, the neighbouring pair with the fewest
/// elements together first (ties: the older clusters), until one remains.
pub(crate) fn auto_tree(groups: &Groups, inputs: &[Tensor]) -> Result<Tree> {
    let g = groups.groups.len();
    let ctx = "building the group hierarchy";
    let mut size = vec![0i64; g];
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (k, x) in inputs.iter().enumerate() {
        let blocks = groups.block_of_elements(k)?;
        let counts = blocks.f_reshape([-1]).and_then(|b| b.f_bincount(None::<Tensor>, g as i64)).ctx(ctx)?;
        let counts = Vec::<i64>::try_from(counts.f_to_kind(Kind::Int64).ctx(ctx)?).map_err(|e| AttribError::Internal(e.to_string()))?;
        for (s, c) in size.iter_mut().zip(counts) {
            *s += c;
        }
        if x.dim() >= 3 {
            // Image: neighbours along the last two dimensions of the compact ids.
            let pos = groups.compact[k].f_contiguous().and_then(|c| c.f_searchsorted(&groups.groups_t, false, false, "left", None::<Tensor>)).ctx(ctx)?;
            let rank = pos.dim() as i64;
            for d in [rank - 1, rank - 2] {
                let len = pos.size()[d as usize];
                if len < 2 {
                    continue;
                }
                let a = pos.f_narrow(d, 0, len - 1).ctx(ctx)?;
                let b = pos.f_narrow(d, 1, len - 1).ctx(ctx)?;
                let differ = a.f_ne_tensor(&b).ctx(ctx)?;
                let lo = a.f_minimum(&b).and_then(|t| t.f_masked_select(&differ)).ctx(ctx)?;
                let hi = a.f_maximum(&b).and_then(|t| t.f_masked_select(&differ)).ctx(ctx)?;
                let code = lo.f_mul_scalar(g as i64).and_then(|l| l.f_add(&hi)).and_then(|c| c.f_unique_consecutive(false, false, None)).ctx(ctx)?.0;
                let code = code.f_sort(0, false).ctx(ctx)?.0.f_to_device(tch::Device::Cpu).ctx(ctx)?;
                for c in Vec::<i64>::try_from(code).map_err(|e| AttribError::Internal(e.to_string()))? {
                    edges.insert(((c / g as i64) as usize, (c % g as i64) as usize));
                }
            }
        } else {
            // Flat rows: groups neighbouring in id order.
            let present = blocks.f_reshape([-1]).and_then(|b| b.f_unique_consecutive(false, false, None)).ctx(ctx)?.0;
            let present = present.f_sort(0, false).ctx(ctx)?.0.f_to_device(tch::Device::Cpu).ctx(ctx)?;
            let mut present = Vec::<i64>::try_from(present).map_err(|e| AttribError::Internal(e.to_string()))?;
            present.dedup();
            for w in present.windows(2) {
                edges.insert((w[0] as usize, w[1] as usize));
            }
        }
    }
    Ok(merge_clusters(&size, &edges))
}

/// Agglomerative merging of `size.len()` leaves over the neighbour pairs `edges`.
pub(crate) fn merge_clusters(size: &[i64], edges: &BTreeSet<(usize, usize)>) -> Tree {
    let g = size.len();
    if g <= 1 {
        return Tree::flat(g);
    }
    // Cluster c (0..2g−1): leaves are 0..g, merges g.. in order; tree node of cluster c is c + 1.
    let mut sizes: Vec<i64> = size.to_vec();
    let mut alive: Vec<bool> = vec![true; g];
    let mut neigh: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); g];
    let mut heap = BinaryHeap::new();
    for &(a, b) in edges {
        if a != b && neigh[a].insert(b) {
            neigh[b].insert(a);
            heap.push(Reverse((sizes[a] + sizes[b], a.min(b), a.max(b))));
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); g];
    let mut left = g;
    while left > 1 {
        let pair = loop {
            match heap.pop() {
                Some(Reverse((_, a, b))) if alive[a] && alive[b] => break (a, b),
                Some(_) => continue,
                None => {
                    // No neighbours left: the two smallest clusters.
                    let mut live: Vec<usize> = (0..sizes.len()).filter(|&c| alive[c]).collect();
                    live.sort_by_key(|&c| (sizes[c], c));
                    break (live[0].min(live[1]), live[0].max(live[1]));
                }
            }
        };
        let (a, b) = pair;
        let c = sizes.len();
        alive[a] = false;
        alive[b] = false;
        sizes.push(sizes[a] + sizes[b]);
        alive.push(true);
        children.push(vec![a, b]);
        let ns: BTreeSet<usize> = neigh[a].union(&neigh[b]).copied().filter(|&n| n != a && n != b && alive[n]).collect();
        for &n in &ns {
            neigh[n].insert(c);
            heap.push(Reverse((sizes[n] + sizes[c], n.min(c), n.max(c))));
        }
        neigh.push(ns);
        left -= 1;
    }
    // Tree nodes: the last cluster is the root (node 0), cluster c < top is node c + 1.
    let top = sizes.len() - 1;
    let node = |c: usize| if c == top { 0 } else { c + 1 };
    let mut t = Tree { children: vec![Vec::new(); top + 1], leaf: vec![None; top + 1] };
    for (c, ch) in children.iter().enumerate() {
        t.children[node(c)] = ch.iter().map(|&x| node(x)).collect();
        t.leaf[node(c)] = (c < g).then_some(c);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_grammar() {
        assert_eq!("auto".parse::<Hierarchy>().unwrap(), Hierarchy::Auto);
        assert_eq!("flat".parse::<Hierarchy>().unwrap(), Hierarchy::Flat);
        assert_eq!("0:10, 1:10, 10:root, 2:-1".parse::<Hierarchy>().unwrap(), Hierarchy::Parents(vec![(0, 10), (1, 10)]));
        let Hierarchy::Parents(p) = "10,10,root".parse::<Hierarchy>().unwrap() else { panic!() };
        let t = Tree::from_parents(&p, &[3, 5, 7]).unwrap();
        // Root: node of group 7 and inner node 10 (children: groups 3 and 5).
        assert_eq!(t.depth(3), 2);
        assert_eq!(t.exact_terms(3), 4 + 4 + 2);
        assert!("0:1,2".parse::<Hierarchy>().is_err());
        assert!("x".parse::<Hierarchy>().is_err());
        assert!(Tree::from_parents(&p, &[3, 5]).is_err());
        assert!(Tree::from_parents(&[(0, 1)], &[0, 1]).is_err(), "a group as a parent");
        assert!(Tree::from_parents(&[(10, 11), (11, 10), (0, 10)], &[0]).is_err(), "a cycle");
        assert!(Tree::from_parents(&[(0, 10), (0, 11)], &[0]).is_err(), "two parents");
    }

    #[test]
    fn merging_pairs_neighbours_smallest_first() {
        // A row of 4 equal leaves: (0 1) and (2 3), then both.
        let edges: BTreeSet<(usize, usize)> = [(0, 1), (1, 2), (2, 3)].into_iter().collect();
        let t = merge_clusters(&[1, 1, 1, 1], &edges);
        assert_eq!(t.depth(4), 2);
        assert_eq!(t.exact_terms(4), 4 * 2 * 2);
        let sets = t.leaf_sets(1);
        let mut inner: Vec<u64> = (0..t.leaf.len()).filter(|&n| t.leaf[n].is_none() && n != 0).map(|n| sets[n][0]).collect();
        inner.sort_unstable();
        assert_eq!(inner, vec![0b0011, 0b1100]);
        // Disconnected leaves are still merged into one tree.
        let t = merge_clusters(&[3, 1, 2], &BTreeSet::new());
        assert_eq!(t.leaf_sets(1)[0][0], 0b111);
        // Consistent orders keep every node's leaves together.
        for o in consistent_orders(&merge_clusters(&[1; 4], &edges), 5, 20, true) {
            let first_half: BTreeSet<i64> = o[..2].iter().copied().collect();
            assert!(first_half == [0, 1].into_iter().collect() || first_half == [2, 3].into_iter().collect(), "{o:?}");
        }
    }
}

