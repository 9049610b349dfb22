// SDSL side of `npm run bench:ngram` (benches/ngram.mjs builds and drives it).
//
// Two FM-index configurations over the same byte text as quarry:
//   rrr:   csa_wt<wt_huff<rrr_vector<127>>, 32, 64>   (Infini-gram mini's configuration)
//   plain: csa_wt<wt_huff<bit_vector>, 32, 64>         (uncompressed bitvectors, rank_support_v)
//
// Usage:
//   ngram_sdsl build KIND TEXT INDEX TMPDIR
//       TEXT: the documents' bytes joined by 0xFF (no 0x00 byte anywhere).
//       Prints one JSON line: {"kind", "n", "build_s", "index_bytes"}.
//   ngram_sdsl query KIND INDEX QUERIES REPS
//       QUERIES: lines "<group>\t<op>\t<arg>": op `count` / `locate` with arg = pattern in hex,
//       op `extract` with arg = "<pos>,<len>[,...]" (text positions); other ops are skipped. Every group is run once as a
//       warm-up and then REPS times; each query is timed on its own (steady_clock).
//       Prints one JSON line per group: {"group", "op", "queries", "samples_ns": [...] (per
//       query, the median over the reps), "checksum" (sum of counts / occurrences / bytes)}.
//
// Build: see benches/ngram_sdsl.sh (g++ -O3 -DNDEBUG -msse4.2, as SDSL's own CMake sets).
#include <sdsl/suffix_arrays.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace sdsl;

using csa_rrr = csa_wt<wt_huff<rrr_vector<127>>, 32, 64>;
using csa_plain = csa_wt<wt_huff<bit_vector>, 32, 64>;

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static std::string unhex(const std::string& h) {
    std::string out;
    out.reserve(h.size() / 2);
    for (size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    }
    return out;
}

struct Query {
    std::string op;
    std::string pat;
    uint64_t pos = 0, len = 0;
};

template <class Csa>
static int build(const std::string& text, const std::string& index, const std::string& tmp, const char* kind) {
    Csa csa;
    // delete_files = true and a fresh id: never reuse intermediate files (text, SA, BWT) of an
    // earlier run, which construct() would otherwise pick up and skip work with
    cache_config cfg(true, tmp, "ngram_sdsl_" + std::string(kind) + "_" + std::to_string(getpid()));
    double t0 = now_s();
    construct(csa, text, cfg, 1);
    double t1 = now_s();
    store_to_file(csa, index);
    std::printf("{\"kind\":\"%s\",\"n\":%llu,\"build_s\":%.3f,\"index_bytes\":%llu}\n", kind,
                (unsigned long long)csa.size(), t1 - t0, (unsigned long long)size_in_bytes(csa));
    return 0;
}

template <class Csa>
static uint64_t run_one(const Csa& csa, const Query& q) {
    if (q.op == "count") {
        return count(csa, q.pat.begin(), q.pat.end());
    } else if (q.op == "locate") {
        auto occ = locate(csa, q.pat.begin(), q.pat.end());
        uint64_t s = occ.size();
        return s;
    } else {
        auto s = extract(csa, q.pos, q.pos + q.len - 1);  // inclusive end
        uint64_t sum = 0;
        for (unsigned char c : s) sum += c;
        return sum;
    }
}

template <class Csa>
static int query(const std::string& index, const std::string& qfile, int reps) {
    Csa csa;
    double t0 = now_s();
    if (!load_from_file(csa, index)) {
        std::fprintf(stderr, "cannot load %s\n", index.c_str());
        return 1;
    }
    double t_load = now_s() - t0;
    std::ifstream in(qfile);
    std::string line;
    std::vector<std::string> order;
    std::map<std::string, std::vector<Query>> groups;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        size_t a = line.find('\t'), b = line.find('\t', a + 1);
        std::string g = line.substr(0, a);
        Query q;
        q.op = line.substr(a + 1, b - a - 1);
        std::string arg = line.substr(b + 1);
        if (q.op != "count" && q.op != "locate" && q.op != "extract") continue;  // quarry-only groups
        if (q.op == "extract") {
            size_t c = arg.find(',');
            q.pos = std::stoull(arg.substr(0, c));
            q.len = std::stoull(arg.substr(c + 1));
        } else {
            q.pat = unhex(arg);
        }
        if (!groups.count(g)) order.push_back(g);
        groups[g].push_back(q);
    }
    std::printf("{\"group\":\"_load\",\"load_s\":%.3f,\"index_bytes\":%llu}\n", t_load,
                (unsigned long long)size_in_bytes(csa));
    for (const auto& g : order) {
        const auto& qs = groups[g];
        uint64_t checksum = 0;
        for (const auto& q : qs) checksum += run_one(csa, q);  // warm-up
        std::vector<std::vector<double>> t(qs.size());
        for (int r = 0; r < reps; ++r) {
            for (size_t i = 0; i < qs.size(); ++i) {
                auto a = std::chrono::steady_clock::now();
                volatile uint64_t v = run_one(csa, qs[i]);
                (void)v;
                auto b = std::chrono::steady_clock::now();
                t[i].push_back(std::chrono::duration<double, std::nano>(b - a).count());
            }
        }
        std::printf("{\"group\":\"%s\",\"op\":\"%s\",\"queries\":%zu,\"checksum\":%llu,\"samples_ns\":[", g.c_str(),
                    qs[0].op.c_str(), qs.size(), (unsigned long long)checksum);
        for (size_t i = 0; i < qs.size(); ++i) {
            auto& v = t[i];
            std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
            std::printf("%s%.1f", i ? "," : "", v[v.size() / 2]);
        }
        std::printf("]}\n");
        std::fflush(stdout);
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: ngram_sdsl build|query ...\n");
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "build" && argc == 6) {
        std::string kind = argv[2];
        if (kind == "rrr") return build<csa_rrr>(argv[3], argv[4], argv[5], "rrr");
        if (kind == "plain") return build<csa_plain>(argv[3], argv[4], argv[5], "plain");
    } else if (cmd == "query" && argc == 6) {
        std::string kind = argv[2];
        int reps = std::atoi(argv[5]);
        if (kind == "rrr") return query<csa_rrr>(argv[3], argv[4], reps);
        if (kind == "plain") return query<csa_plain>(argv[3], argv[4], reps);
    }
    std::fprintf(stderr, "bad arguments\n");
    return 2;
}
