"""Joint NSGA-II over all operating points: the circuit limit holds, the clustering seed is kept
and beaten or matched, and the comparison spends the same number of scored networks."""
import numpy as np

from agn.operating_points.search import (
    CachedScorer,
    JointSpace,
    compare_with_clustering,
    joint_search,
    summary_hypervolume,
)
from agn.search import SearchSpace, hypervolume

LAYERS = ("c1", "c2", "c3", "fc")
MULTS = (4000, 9000, 3000, 500)


def _space():
    return SearchSpace.build(LAYERS, MULTS, "trunc:*,drum:*")


def _error(space):
    power = dict(zip(space.candidates, space.relative_power))
    weight = dict(zip(LAYERS, (0.3, 0.2, 0.4, 0.6)))
    return lambda asg: float(min(1.0, sum(weight[n] * (1 - power[s]) ** 2
                                          for n, s in asg.items())))


def test_joint_search_keeps_k_circuits_and_the_seed_set():
    space = _space()
    joint = JointSpace(space, 3, max_circuits=3)
    seed = np.concatenate([space.uniform(space.exact_gene), space.uniform(3), space.uniform(6)])
    score = CachedScorer(_error(space))
    res = joint_search(joint, score, [seed], pop_size=12, n_gen=4)
    assert tuple(int(v) for v in seed) in res.genomes
    assert res.objectives.shape == (len(res.genomes), 6)
    summary = res.summary()
    seed_row = summary[res.genomes.index(tuple(int(v) for v in seed))]
    assert summary_hypervolume(res) >= hypervolume(seed_row[None]) - 1e-12
    assert res.feasible().any()
    decoded = joint.decode(seed)
    assert [len(set(d.values())) for d in decoded] == [1, 1, 1]
    assert joint.circuits(seed) == 3


def test_comparison_with_clustering_spends_the_same_budget():
    space = _space()
    joint = JointSpace(space, 2, max_circuits=2)
    seed = np.concatenate([space.uniform(space.exact_gene), space.uniform(4)])

    def cluster(rng):
        a, b = sorted(rng.integers(0, space.upper + 1, 2))
        return [space.decode(space.uniform(int(a))), space.decode(space.uniform(int(b)))]

    out = compare_with_clustering(joint, CachedScorer(_error(space)), cluster, [seed],
                                  pop_size=8, n_gen=3)
    assert out["budget_networks"] > 0
    assert out["clustering_networks"] >= min(out["budget_networks"], space.upper + 1)
    assert 0.0 <= out["clustering_hypervolume"] <= 1.0 and out["nsga_hypervolume"] > 0


def test_the_kept_set_dominates_the_clustering_seed_with_distinct_points():
    from agn.operating_points.joint import choose_set

    space = _space()
    joint = JointSpace(space, 3, max_circuits=3)
    seed = np.concatenate([space.uniform(space.exact_gene), space.uniform(3), space.uniform(6)])
    res = joint_search(joint, CachedScorer(_error(space)), [seed], pop_size=12, n_gen=4)
    chosen = choose_set(res, seed)
    f = res.objectives
    row, ref = f[res.genomes.index(chosen)], f[res.genomes.index(tuple(int(v) for v in seed))]
    assert np.all(row <= ref + 1e-12) and joint.circuits(np.array(chosen)) <= 3
    assert len({tuple(p) for p in joint.split(np.array(chosen))}) == 3
    feasible_better = [g for g, o, ok in zip(res.genomes, f, res.feasible())
                       if ok and np.all(o <= ref + 1e-12)
                       and len({tuple(p) for p in joint.split(np.array(g))}) == 3]
    assert row[0::2].sum() == min(f[res.genomes.index(g)][0::2].sum() for g in feasible_better)


def test_repair_keeps_the_most_used_circuits_and_moves_the_rest_to_the_nearest():
    space = _space()
    joint = JointSpace(space, 2, max_circuits=2)
    power = np.asarray(space.relative_power)
    g = np.array([1, 1, 1, 5, 5, 5, 2, 6])             # 1 and 5 most used; 2 and 6 move
    r = joint.repair(g)
    assert joint.circuits(r) == 2 and set(r.tolist()) == {1, 5}
    for before, after in zip(g, r):
        if before in (2, 6):
            assert abs(power[after] - power[before]) == min(abs(power[1] - power[before]),
                                                            abs(power[5] - power[before]))
    fine = np.array([0, 0, 0, 0, 3, 3, 3, 3])
    assert np.array_equal(joint.repair(fine), fine)
    assert np.array_equal(JointSpace(space, 2, None).repair(g), g)
    res = joint_search(joint, CachedScorer(_error(space)), [fine], pop_size=10, n_gen=3)
    assert res.feasible().all()                        # no evaluation spent on infeasible sets
