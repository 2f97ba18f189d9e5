// The first-pass CTC prefix beam search of model/decoding/search.py, compiled: the same beams, scores and token
// timings, bit for bit, as its Python reference (`reference_prefix_beam_search`), which tests/decoding/ compares
// it with. Every floating-point step is the reference's, in the reference's order, on doubles, with the same libm
// calls (log, exp, log1p); the build forbids contracting a*b+c into one rounding (-ffp-contract=off, setup.py).
//
// What lives here: the frame loop (`search`), and the scorers it calls per candidate: the token n-gram
// (model/decoding/lm.py: NgramLM), the lexicon penalty (lexicon.py: LexiconPenalty) and the hotword trie
// (hotwords.py: HotwordTrie). model/decoding/compiled_search.py builds them from the Python objects, once.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

constexpr double NEG_INF = -std::numeric_limits<double>::infinity();
constexpr int NO_TOKEN = -1;

double logaddexp(double a, double b) {  // search.py's _logaddexp, branch for branch
    if (a == NEG_INF) return b;
    if (b == NEG_INF) return a;
    double high = a > b ? a : b, low = a > b ? b : a;
    return high + std::log1p(std::exp(low - high));
}

// ------------------------------------------------------------------------------------------ n-gram LM (lm.py)

// int64 key -> value, open addressing with linear probing. Key 0 (the empty n-gram) is never asked for.
class KeyTable {
public:
    KeyTable(py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys,
             py::array_t<double, py::array::c_style | py::array::forcecast> values) {
        auto k = keys.unchecked<1>();
        auto v = values.unchecked<1>();
        if (k.shape(0) != v.shape(0)) throw std::invalid_argument("keys and values differ in length");
        size_t capacity = 16;
        while (capacity * 7 < static_cast<size_t>(k.shape(0)) * 10) capacity *= 2;  // load at most 0.7
        keys_.assign(capacity, 0);
        values_.assign(capacity, 0.0);
        mask_ = capacity - 1;
        for (py::ssize_t i = 0; i < k.shape(0); ++i) {
            if (k(i) == 0) continue;
            size_t slot = slot_of(k(i));
            keys_[slot] = k(i);
            values_[slot] = v(i);
        }
    }

    const double* find(int64_t key) const {
        size_t slot = slot_of(key);
        return keys_[slot] == key ? &values_[slot] : nullptr;
    }

private:
    size_t slot_of(int64_t key) const {  // the key's slot, or the empty one where it would go
        uint64_t h = static_cast<uint64_t>(key);  // splitmix64's finaliser
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        size_t slot = (h ^ (h >> 31)) & mask_;
        while (keys_[slot] != 0 && keys_[slot] != key) slot = (slot + 1) & mask_;
        return slot;
    }

    std::vector<int64_t> keys_;
    std::vector<double> values_;
    size_t mask_ = 0;
};

// NgramLM: interpolated Kneser-Ney, P(w | h) = alpha(h, w) + gamma(h) * P(w | h[1:]).
class NgramLm {
public:
    NgramLm(int order, int vocab_size, int end_id, const KeyTable& alpha, const KeyTable& gamma,
            std::vector<double> unigram)
        : order_(order), base_(vocab_size + 1), end_id_(end_id), alpha_(alpha), gamma_(gamma),
          unigram_(std::move(unigram)) {}

    int order() const { return order_; }
    int end_id() const { return end_id_; }

    // LanguageModel.log_prob: log(max(P(token | context), 1e-12)) for a context of order-1 tokens.
    double log_prob(const std::vector<int>& context, int token) const {
        double p = prob(context.data(), static_cast<int>(context.size()), token);
        return std::log(1e-12 > p ? 1e-12 : p);
    }

private:
    double prob(const int* context, int n, int token) const {  // NgramLM._prob
        if (n == 0) return unigram_.at(static_cast<size_t>(token));
        double lower = prob(context + 1, n - 1, token);
        int64_t key = 0;
        for (int i = 0; i < n; ++i) key = key * base_ + context[i] + 1;
        const double* gamma = gamma_.find(key);
        if (gamma == nullptr) return lower;
        const double* alpha = alpha_.find(key * base_ + token + 1);
        return (alpha != nullptr ? *alpha : 0.0) + *gamma * lower;
    }

    int order_;
    int64_t base_;
    int end_id_;
    const KeyTable& alpha_;  // kept alive by the Python object (py::keep_alive)
    const KeyTable& gamma_;
    std::vector<double> unigram_;
};

// ------------------------------------------------------------------------------------ lexicon (lexicon.py)

// A word list: membership, and "is this the start of some word" from the sorted list (the first word not below
// `text` starts with it if any word does).
class WordList {
public:
    explicit WordList(std::vector<std::string> words) : words_(std::move(words)) {
        std::sort(words_.begin(), words_.end());
    }

    bool is_word(const std::string& text) const { return std::binary_search(words_.begin(), words_.end(), text); }

    bool is_prefix(const std::string& text) const {
        auto it = std::lower_bound(words_.begin(), words_.end(), text);
        return it != words_.end() && it->compare(0, text.size(), text) == 0;
    }

private:
    std::vector<std::string> words_;
};

// Token id -> its surface text (tokenizer.token_text), as LexiconPenalty reads it.
struct Pieces {
    std::vector<std::string> raw;
    std::vector<std::string> stripped;
    std::vector<bool> starts_word;  // raw starts with " "
};

class LexiconPenalty {
public:
    LexiconPenalty(const WordList& lexicon, const WordList* request_words, const Pieces& pieces, double penalty)
        : lexicon_(lexicon), request_(request_words), pieces_(pieces), penalty_(penalty) {}

    double token_penalty(const std::vector<int>& prefix, int token) const {
        size_t t = static_cast<size_t>(token);
        std::optional<std::string> word = partial_word(prefix);
        if (pieces_.starts_word.at(t) || !word) {  // the token starts a new word: the previous one is finished
            double charged = ends_outside(word) ? penalty_ : 0.0;
            return charged + (is_prefix(pieces_.stripped[t]) ? 0.0 : penalty_);
        }
        if (is_prefix(*word) && !is_prefix(*word + pieces_.raw[t])) return penalty_;
        return 0.0;
    }

private:
    bool is_word(const std::string& text) const {
        return lexicon_.is_word(text) || (request_ != nullptr && request_->is_word(text));
    }
    bool is_prefix(const std::string& text) const {
        return lexicon_.is_prefix(text) || (request_ != nullptr && request_->is_prefix(text));
    }
    bool ends_outside(const std::optional<std::string>& word) const {
        return word && is_prefix(*word) && !is_word(*word);
    }

    std::optional<std::string> partial_word(const std::vector<int>& prefix) const {
        if (prefix.empty()) return std::nullopt;
        size_t start = prefix.size();
        while (start > 0 && !pieces_.starts_word.at(static_cast<size_t>(prefix[start - 1]))) --start;
        if (start > 0) --start;  // the piece that starts the word is part of it
        std::string word;
        for (size_t i = start; i < prefix.size(); ++i) word += pieces_.stripped[static_cast<size_t>(prefix[i])];
        return word;
    }

    const WordList& lexicon_;
    const WordList* request_;
    const Pieces& pieces_;
    double penalty_;
};

// ------------------------------------------------------------------------------------ hotwords (hotwords.py)

class Trie {
public:
    Trie(double boost, std::vector<std::unordered_map<int, int>> children, std::vector<int> depth,
         std::vector<bool> terminal)
        : boost_(boost), children_(std::move(children)), depth_(std::move(depth)), terminal_(std::move(terminal)) {}

    std::pair<int, double> advance(int node, int token) const {  // HotwordTrie.advance
        const auto& here = children_.at(static_cast<size_t>(node));
        auto child = here.find(token);
        if (child == here.end()) {
            auto restart = children_[0].find(token);
            double refund = -boost_ * depth_[static_cast<size_t>(node)];
            if (restart == children_[0].end()) return {0, refund};
            return settle(restart->second, refund + boost_);
        }
        return settle(child->second, boost_);
    }

private:
    std::pair<int, double> settle(int node, double delta) const {
        size_t n = static_cast<size_t>(node);
        if (terminal_[n] && children_[n].empty()) return {0, delta};
        return {node, delta};
    }

    double boost_;
    std::vector<std::unordered_map<int, int>> children_;
    std::vector<int> depth_;
    std::vector<bool> terminal_;
};

// ------------------------------------------------------------------------------------ shallow fusion (LmFusion)

class Fusion {
public:
    Fusion(double weight, double bonus, int order, int end_id, const NgramLm* lm, py::object python_lm,
           const LexiconPenalty* lexicon)
        : weight_(weight), bonus_(bonus), order_(order), end_id_(end_id), lm_(lm), python_lm_(std::move(python_lm)),
          lexicon_(lexicon) {}

    // LmFusion.token_score(prefix, token)
    double token_score(const std::vector<int>& prefix, int token) const {
        double score = weight_ * log_prob_after(context_of(prefix), token) + bonus_;
        return lexicon_ != nullptr ? score - lexicon_->token_penalty(prefix, token) : score;
    }

private:
    std::vector<int> context_of(const std::vector<int>& history) const {  // LanguageModel.context_of
        size_t n = order_ > 1 ? static_cast<size_t>(order_ - 1) : 0;
        std::vector<int> context(n, end_id_);
        size_t take = std::min(n, history.size());
        std::copy(history.end() - static_cast<std::ptrdiff_t>(take), history.end(), context.end() - take);
        return context;
    }

    double log_prob_after(const std::vector<int>& context, int token) const {
        if (lm_ != nullptr) return lm_->log_prob(context, token);
        py::gil_scoped_acquire gil;  // the frame loop runs without the GIL (`search`)
        py::tuple key(context.size());  // a language model only Python knows: ask it (cached there)
        for (size_t i = 0; i < context.size(); ++i) key[i] = py::int_(context[i]);
        return python_lm_(key, token).cast<double>();
    }

    double weight_, bonus_;
    int order_, end_id_;
    const NgramLm* lm_;
    py::object python_lm_;  // LanguageModel.log_prob_after, when lm_ is null
    const LexiconPenalty* lexicon_;
};

// ------------------------------------------------------------------------------------ the search (search.py)

struct Timing {
    int token, start, end;
    double confidence;
};

// A beam's timings are its chunk-start ancestor's tuple (the `origin`), its first `keep` entries, then `tail`:
// within a chunk a beam only appends tokens or extends its last one, so the tuple is rebuilt once per chunk.
struct Beam {
    std::vector<int> prefix;
    uint64_t hash;  // of prefix
    double blank, non_blank;
    int node;
    double bias, lm_score;
    int origin;
    size_t keep;
    std::vector<Timing> tail;

    double total() const { return logaddexp(blank, non_blank); }
    bool has_timings() const { return keep > 0 || !tail.empty(); }
};

struct Candidate {
    double blank, non_blank;
    int parent;  // index of the beam whose path created it
    int token;   // NO_TOKEN: kept the parent's prefix
    double log_prob;
    bool repeated;
    int node;
    double bias, lm_score;

    double score() const { return logaddexp(blank, non_blank) + bias + lm_score; }
};

struct Options {
    int beam_size, token_candidates, blank_id;
    double min_token_log_prob, skip, gain, bound;  // skip: log(blank_skip_prob); gain/bound: inf = score all
};

uint64_t extend_hash(uint64_t hash, int token) {
    return (hash ^ (static_cast<uint64_t>(token) + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2))) *
           0xff51afd7ed558ccdULL;
}

uint64_t hash_of(const std::vector<int>& prefix, size_t length) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < length; ++i) hash = extend_hash(hash, prefix[i]);
    return hash;
}

class FrameSearch {
public:
    FrameSearch(const Options& options, const Trie* trie, const Fusion* fusion, const std::vector<Timing>& origin_last)
        : o_(options), trie_(trie), fusion_(fusion), origin_last_(origin_last) {}

    void blank_frame(std::vector<Beam>& beams, double blank_lp) const {
        for (Beam& beam : beams) {
            beam.blank = beam.total() + blank_lp;
            beam.non_blank = NEG_INF;
        }
    }

    std::vector<Beam> advance(const std::vector<Beam>& beams, int frame, double blank_lp,
                              const std::vector<std::pair<int, double>>& candidates) {
        size_t n = beams.size();
        totals_.resize(n);
        repeat_lps_.resize(n);
        for (size_t i = 0; i < n; ++i) {
            totals_[i] = beams[i].total();
            repeat_lps_[i] = NEG_INF;
            if (!beams[i].prefix.empty())
                for (const auto& [token, lp] : candidates)
                    if (token == beams[i].prefix.back()) { repeat_lps_[i] = lp; break; }
        }
        double floor = floor_of(beams, blank_lp);
        link_children(beams);
        following_.clear();
        slot_of_beam_.assign(n, -1);
        for (size_t i = 0; i < n; ++i) {
            const Beam& beam = beams[i];
            stay(i, beam, totals_[i] + blank_lp, beam.non_blank + repeat_lps_[i], repeat_lps_[i]);
            double reach = floor - o_.gain - beam.bias - beam.lm_score;
            int last = beam.prefix.empty() ? NO_TOKEN : beam.prefix.back();
            for (const auto& [token, lp] : candidates) {
                double path = token == last ? beam.blank + lp : totals_[i] + lp;  // a repeat needs a blank between
                int kept = child_for(i, token);
                if (path > NEG_INF && (path >= reach || kept >= 0)) extend(i, beam, token, lp, path, kept);
            }
        }
        std::vector<int> ranked = fusion_ == nullptr ? rank(following_.size()) : rank_fused(beams);
        std::vector<Beam> next;
        next.reserve(ranked.size());
        for (int index : ranked) next.push_back(to_beam(beams, following_[static_cast<size_t>(index)], frame));
        return next;
    }

private:
    // The beam_size-th best score the kept prefixes reach by their own blank and repeat paths (or -inf).
    double floor_of(const std::vector<Beam>& beams, double blank_lp) {
        if (beams.size() < static_cast<size_t>(o_.beam_size)) return NEG_INF;
        scratch_.clear();
        for (size_t i = 0; i < beams.size(); ++i)
            scratch_.push_back(logaddexp(totals_[i] + blank_lp, beams[i].non_blank + repeat_lps_[i]) + beams[i].bias +
                               beams[i].lm_score);
        auto kth = scratch_.begin() + (o_.beam_size - 1);
        std::nth_element(scratch_.begin(), kth, scratch_.end(), std::greater<double>());
        return *kth;
    }

    // children_[j]: (token, i) for every kept beam i whose prefix is beam j's plus that token (`merging`).
    void link_children(const std::vector<Beam>& beams) {
        children_.assign(beams.size(), {});
        std::unordered_multimap<uint64_t, int> by_hash;  // a hash only proposes: the prefixes are compared
        for (size_t j = 0; j < beams.size(); ++j) by_hash.emplace(beams[j].hash, static_cast<int>(j));
        for (size_t i = 0; i < beams.size(); ++i) {
            const std::vector<int>& prefix = beams[i].prefix;
            if (prefix.empty()) continue;
            auto [first, end] = by_hash.equal_range(hash_of(prefix, prefix.size() - 1));
            for (auto found = first; found != end; ++found) {
                const std::vector<int>& parent = beams[static_cast<size_t>(found->second)].prefix;
                if (parent.size() + 1 == prefix.size() && std::equal(parent.begin(), parent.end(), prefix.begin()))
                    children_[static_cast<size_t>(found->second)].emplace_back(prefix.back(), static_cast<int>(i));
            }
        }
    }

    int child_for(size_t beam, int token) const {
        for (const auto& [t, i] : children_[beam])
            if (t == token) return i;
        return -1;
    }

    void stay(size_t i, const Beam& parent, double blank_path, double repeat_path, double log_prob) {  // _stay
        int& slot = slot_of_beam_[i];
        if (slot < 0) {
            bool repeated = repeat_path > NEG_INF && parent.has_timings();
            slot = static_cast<int>(following_.size());
            following_.push_back({blank_path, repeat_path, static_cast<int>(i), NO_TOKEN, log_prob, repeated,
                                  parent.node, parent.bias, parent.lm_score});
        } else {
            Candidate& entry = following_[static_cast<size_t>(slot)];
            entry.blank = logaddexp(entry.blank, blank_path);
            entry.non_blank = logaddexp(entry.non_blank, repeat_path);
        }
    }

    void extend(size_t i, const Beam& parent, int token, double lp, double path, int kept) {  // _extend
        if (kept >= 0 && slot_of_beam_[static_cast<size_t>(kept)] >= 0) {
            Candidate& entry = following_[static_cast<size_t>(slot_of_beam_[static_cast<size_t>(kept)])];
            entry.non_blank = logaddexp(entry.non_blank, path);
            return;
        }
        auto [node, delta] = trie_ != nullptr ? trie_->advance(parent.node, token) : std::pair<int, double>{0, 0.0};
        if (kept >= 0) slot_of_beam_[static_cast<size_t>(kept)] = static_cast<int>(following_.size());
        following_.push_back({NEG_INF, path, static_cast<int>(i), token, lp, false, node, parent.bias + delta,
                              parent.lm_score});
    }

    // Without fusion: the beam_size best by score, ties in insertion order (heapq.nlargest's contract).
    std::vector<int> rank(size_t count) const {
        std::vector<int> order(count);
        for (size_t k = 0; k < count; ++k) order[k] = static_cast<int>(k);
        std::vector<double> scores(count);
        for (size_t k = 0; k < count; ++k) scores[k] = following_[k].score();
        size_t keep = std::min(count, static_cast<size_t>(o_.beam_size));
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                          [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
        order.resize(keep);
        return order;
    }

    // _rank_fused: best-first by optimistic score; a new prefix gets its LM step only while it could still rank.
    // The kept set is the top beam_size of those scored under (score, earlier first), whatever the heap's layout.
    std::vector<int> rank_fused(const std::vector<Beam>& beams) {
        size_t count = following_.size();
        std::vector<std::pair<double, int>> pending(count);  // (optimistic score, insertion order)
        for (size_t k = 0; k < count; ++k) {
            const Candidate& c = following_[k];
            pending[k] = {c.score() + (c.token != NO_TOKEN ? o_.bound : 0.0), static_cast<int>(k)};
        }
        std::sort(pending.begin(), pending.end(), [](const auto& a, const auto& b) {
            return a.first > b.first || (a.first == b.first && a.second < b.second);
        });
        auto better = [](const std::pair<double, int>& a, const std::pair<double, int>& b) {
            return a.first > b.first || (a.first == b.first && a.second < b.second);
        };
        std::vector<std::pair<double, int>> top;  // a heap whose front is the worst kept: (score, insertion order)
        size_t size = static_cast<size_t>(o_.beam_size);
        for (const auto& [optimistic, index] : pending) {
            if (top.size() == size && optimistic < top.front().first) break;
            Candidate& c = following_[static_cast<size_t>(index)];
            if (c.token != NO_TOKEN) c.lm_score += fusion_->token_score(beams[static_cast<size_t>(c.parent)].prefix,
                                                                        c.token);
            std::pair<double, int> entry{c.score(), index};
            if (top.size() < size) {
                top.push_back(entry);
                std::push_heap(top.begin(), top.end(), better);
            } else if (better(entry, top.front())) {
                std::pop_heap(top.begin(), top.end(), better);
                top.back() = entry;
                std::push_heap(top.begin(), top.end(), better);
            }
        }
        std::sort(top.begin(), top.end(), better);
        std::vector<int> ranked;
        ranked.reserve(top.size());
        for (const auto& entry : top) ranked.push_back(entry.second);
        return ranked;
    }

    Beam to_beam(const std::vector<Beam>& beams, const Candidate& c, int frame) const {  // _Candidate.to_beam
        const Beam& parent = beams[static_cast<size_t>(c.parent)];
        Beam beam{parent.prefix, parent.hash, c.blank, c.non_blank, c.node, c.bias, c.lm_score, parent.origin,
                  parent.keep, parent.tail};
        if (c.token != NO_TOKEN) {
            beam.prefix.push_back(c.token);
            beam.hash = extend_hash(beam.hash, c.token);
            beam.tail.push_back({c.token, frame, frame, std::exp(c.log_prob)});
        } else if (c.repeated) {
            if (beam.tail.empty()) {  // the last timing is still the origin's: take it over into the tail
                beam.tail.push_back(origin_last_[static_cast<size_t>(beam.origin)]);
                beam.keep -= 1;
            }
            Timing& last = beam.tail.back();
            double confidence = std::exp(c.log_prob);
            last.end = frame;
            last.confidence = confidence > last.confidence ? confidence : last.confidence;  // Python's max(a, b)
        }
        return beam;
    }

    const Options& o_;
    const Trie* trie_;
    const Fusion* fusion_;
    const std::vector<Timing>& origin_last_;
    std::vector<double> totals_, repeat_lps_, scratch_;
    std::vector<std::vector<std::pair<int, int>>> children_;
    std::vector<Candidate> following_;
    std::vector<int> slot_of_beam_;
};

// beams: [(prefix, blank, non_blank, timings, node, bias, lm_score)] in the state's order; the frames as
// FramePosteriors holds them. Returns the next beams in the same form, best first.
py::list search(const py::list& beams, const std::vector<std::vector<double>>& top_log_probs,
                const std::vector<std::vector<int>>& top_ids, const std::vector<double>& blank_log_probs,
                int first_frame, const Options& options, const Trie* trie, const Fusion* fusion,
                const py::object& timing_type) {
    std::vector<Beam> state;
    std::vector<py::tuple> origins;
    std::vector<Timing> origin_last;
    for (const py::handle& item : beams) {
        py::tuple row = py::reinterpret_borrow<py::tuple>(item);
        py::tuple timings = row[3].cast<py::tuple>();
        std::vector<int> prefix = row[0].cast<std::vector<int>>();
        uint64_t hash = hash_of(prefix, prefix.size());
        Timing last{0, 0, 0, 0.0};
        if (timings.size() > 0) {
            py::tuple t = timings[timings.size() - 1].cast<py::tuple>();
            last = {t[0].cast<int>(), t[1].cast<int>(), t[2].cast<int>(), t[3].cast<double>()};
        }
        state.push_back({std::move(prefix), hash, row[1].cast<double>(), row[2].cast<double>(), row[4].cast<int>(),
                         row[5].cast<double>(), row[6].cast<double>(), static_cast<int>(origins.size()),
                         timings.size(), {}});
        origins.push_back(timings);
        origin_last.push_back(last);
    }
    FrameSearch frames(options, trie, fusion, origin_last);
    std::vector<std::pair<int, double>> candidates;
    size_t wanted = static_cast<size_t>(options.token_candidates);
    {
        // The frame loop reads only C++ data: other threads (the event loop, the other search thread) run meanwhile.
        py::gil_scoped_release no_gil;
        for (size_t s = 0; s < blank_log_probs.size(); ++s) {
            double blank_lp = blank_log_probs[s];
            if (blank_lp > options.skip) {
                frames.blank_frame(state, blank_lp);
                continue;
            }
            candidates.clear();
            for (size_t k = 0; k < top_ids[s].size() && candidates.size() < wanted; ++k)
                if (top_ids[s][k] != options.blank_id && top_log_probs[s][k] > options.min_token_log_prob)
                    candidates.emplace_back(top_ids[s][k], top_log_probs[s][k]);
            state = frames.advance(state, first_frame + static_cast<int>(s), blank_lp, candidates);
        }
    }
    py::list out;
    for (const Beam& beam : state) {
        py::tuple prefix(beam.prefix.size());
        for (size_t i = 0; i < beam.prefix.size(); ++i) prefix[i] = py::int_(beam.prefix[i]);
        const py::tuple& origin = origins[static_cast<size_t>(beam.origin)];
        py::tuple timings(beam.keep + beam.tail.size());
        for (size_t i = 0; i < beam.keep; ++i) timings[i] = origin[i];
        for (size_t i = 0; i < beam.tail.size(); ++i) {
            const Timing& t = beam.tail[i];
            timings[beam.keep + i] = timing_type(t.token, t.start, t.end, t.confidence);
        }
        out.append(py::make_tuple(prefix, beam.blank, beam.non_blank, timings, beam.node, beam.bias, beam.lm_score));
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_ctc_search, m) {
    m.doc() = "The first-pass CTC prefix beam search, compiled (model/decoding/search.py is the reference).";
    py::class_<KeyTable>(m, "KeyTable").def(py::init<py::array_t<int64_t, py::array::c_style | py::array::forcecast>,
                                                     py::array_t<double, py::array::c_style | py::array::forcecast>>());
    py::class_<NgramLm>(m, "NgramLm")
        .def(py::init<int, int, int, const KeyTable&, const KeyTable&, std::vector<double>>(),
             py::keep_alive<1, 5>(), py::keep_alive<1, 6>())
        .def("log_prob", &NgramLm::log_prob);
    py::class_<WordList>(m, "WordList").def(py::init<std::vector<std::string>>());
    py::class_<Pieces>(m, "Pieces").def(py::init([](std::vector<std::string> raw, std::vector<std::string> stripped) {
        Pieces pieces{std::move(raw), std::move(stripped), {}};
        for (const std::string& piece : pieces.raw) pieces.starts_word.push_back(!piece.empty() && piece[0] == ' ');
        return pieces;
    }));
    py::class_<LexiconPenalty>(m, "LexiconPenalty")
        .def(py::init<const WordList&, const WordList*, const Pieces&, double>(), py::keep_alive<1, 2>(),
             py::keep_alive<1, 3>(), py::keep_alive<1, 4>())
        .def("token_penalty", &LexiconPenalty::token_penalty);
    py::class_<Trie>(m, "Trie").def(
        py::init<double, std::vector<std::unordered_map<int, int>>, std::vector<int>, std::vector<bool>>());
    py::class_<Fusion>(m, "Fusion")
        .def(py::init<double, double, int, int, const NgramLm*, py::object, const LexiconPenalty*>(),
             py::keep_alive<1, 6>(), py::keep_alive<1, 8>())
        .def("token_score", &Fusion::token_score);
    py::class_<Options>(m, "Options")
        .def(py::init<int, int, int, double, double, double, double>(), py::arg("beam_size"),
             py::arg("token_candidates"), py::arg("blank_id"), py::arg("min_token_log_prob"), py::arg("skip"),
             py::arg("gain"), py::arg("bound"));
    m.def("search", &search, py::arg("beams"), py::arg("top_log_probs"), py::arg("top_ids"),
          py::arg("blank_log_probs"), py::arg("first_frame"), py::arg("options"), py::arg("trie").none(true),
          py::arg("fusion").none(true), py::arg("timing_type"));
}
