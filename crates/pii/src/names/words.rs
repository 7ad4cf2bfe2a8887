//! The word lists around names: which names are also words, what introduces or addresses a
//! person, and what ends a run of capitalised words that is an organisation.

/// First names that are everyday words: a name only with support (a surname next to it, a cue,
/// being addressed, or said before in the call).
#[rustfmt::skip]
pub(super) const AMBIGUOUS: &[&str] = &[
    "will", "may", "june", "april", "august", "bill", "mark", "rose", "hope", "joy", "faith", "grace", "art",
    "frank", "pat", "sue", "jack", "don", "ray", "guy", "earl", "dawn", "penny", "ruby", "crystal", "amber",
    "summer", "autumn", "iris", "lily", "daisy", "violet", "holly", "ivy", "pearl", "chase", "hunter", "bob",
    "sandy", "cliff", "dale", "glen", "lane", "miles", "jay", "rob", "drew", "wade", "rod", "herb", "ginger",
    "heather", "melody", "star", "grant", "price", "carter", "king", "young", "long", "major", "sterling",
    "sunny", "misty", "honey", "candy", "angel", "destiny", "trinity", "justice", "precious", "royal", "prince",
    "rusty", "buck", "chance", "christian", "stormy", "skip", "bud", "sonny", "forest", "page", "love", "sky",
    "storm", "early", "green", "brown", "white", "black", "gray", "rich", "case", "well", "ok", "okay", "sure",
    "can", "hi", "yes", "no", "so", "an", "in", "my", "do", "be", "ma", "thank", "thanks", "great", "good",
    "perfect", "right", "just", "still", "then", "soon", "last", "next", "one", "all", "son", "bank", "card",
    "visa", "social", "security", "customer", "service", "account", "number", "street", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "july",
    "september", "october", "november", "december", "georgia", "virginia", "carolina", "washington", "dakota",
    "montana", "nevada", "florida", "indiana", "austin", "houston", "dallas", "jackson", "lincoln", "madison",
    "phoenix", "denver", "paris", "sydney", "london", "chelsea", "florence", "charlotte", "savannah", "orlando",
    "christmas", "easter", "god", "lord", "internet", "apple", "amazon", "google", "wi", "fi",
];

/// Names that open sentences as words ("Will you hold?", "May I ask"): a remembered name there is
/// a name only when addressed ("Will, ...").
#[rustfmt::skip]
pub(super) const SENTENCE_STARTERS: &[&str] = &[
    "will", "may", "can", "sure", "ok", "okay", "well", "so", "just", "still", "then", "soon", "last", "next",
    "long", "young", "early", "love", "hope", "mark", "bill", "chase", "grant", "rich", "frank",
    "yeah", "yep", "hello", "hey", "absolutely", "alright", "sorry", "please", "awesome", "wonderful",
];

/// Words that end a run of capitalised words that is an organisation, not a person.
#[rustfmt::skip]
pub(super) const ORGANISATION: &[&str] = &[
    "inc", "llc", "ltd", "corp", "corporation", "company", "co", "group", "bank", "insurance", "plumbing",
    "electric", "motors", "airlines", "financial", "services", "solutions", "systems", "technologies",
    "partners", "associates", "brothers", "bros", "foods", "market", "pharmacy", "hospital", "clinic",
    "medical", "university", "college", "school", "church", "realty", "construction", "law", "auto", "store",
    "stores", "hardware", "restaurant", "cafe", "hotel", "fargo", "stanley", "schwab", "sachs", "lynch",
    "depot", "foundation", "center", "centre", "credit", "union", "mutual", "health", "dental", "energy",
    "logistics", "media", "holdings", "trust", "capital",
    "supply", "supplies", "communications", "travel", "electronics", "kitchen", "outdoor", "outdoors", "cable", "internet",
    "books", "noodle", "house", "garden", "gardens", "shop", "goods", "sports", "fitness", "gym", "salon", "spa", "studio", "labs",
    "software", "networks", "network", "wireless", "telecom", "utilities", "airways", "shipping", "freight", "express",
    "delivery", "rentals", "rental", "repair", "cleaning", "landscaping", "roofing", "heating", "optical", "care", "properties",
    "homes", "builders", "design", "furniture", "outfitters", "apparel", "boutique", "jewelers", "automotive", "tire", "tires",
    "collision", "marine", "pets", "veterinary", "bakery", "pizza", "grill", "diner", "bistro", "brewing", "coffee", "deli",
    "catering", "entertainment", "cinema", "theater", "records", "press", "publishing", "printing", "consulting", "agency",
    "advisors", "accounting", "legal", "attorneys", "lending", "mortgage", "loan", "loans", "finance", "investments",
    "securities", "wealth", "management", "staffing", "industries", "manufacturing", "international", "savings", "lines",
    "cruise", "cruises", "power", "broadband", "fiber", "telephone", "mobile", "vacations", "tours", "travels", "airline",
    "motel", "inn", "resort", "resorts", "hotels", "club", "supermarket", "grocery", "foods", "farms", "dairy", "outlet",
    "mart", "depot", "warehouse", "distribution", "logistic", "transport", "transportation", "movers", "moving", "storage",
    "plumbers", "electricians", "contractors", "dentistry", "orthodontics", "pediatrics", "family", "practice", "institute",
    "academy", "library", "museum", "gallery", "bookstore", "books", "cellular", "tech", "digital", "computers", "computer",
];

#[rustfmt::skip]
pub(super) const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "dr", "mister", "missus", "doctor", "prof", "professor", "sir", "madam",
];

/// Phrases after which the capitalised words are a name (lower case, with their trailing space).
#[rustfmt::skip]
pub(super) const INTRODUCERS: &[&str] = &[
    "my name is ", "name is ", "name's ", "this is ", "i'm ", "i’m ", "i am ", "it's ", "it’s ",
    "speaking with ", "speak with ", "speak to ", "talking to ", "talking with ", "talk to ", "ask for ",
    "call me ", "named ", "called ", "spoke with ", "spoke to ", "account holder is ", "on behalf of ",
    "my wife ", "my husband ", "my son ", "my daughter ", "my mother ", "my father ", "my mom ", "my dad ",
    "my brother ", "my sister ", "my partner ", "my colleague ", "agent ",
];

/// Words before a name that address the listener: "Hi John", "Thank you, John".
#[rustfmt::skip]
pub(super) const ADDRESSING: &[&str] = &[
    "hi", "hello", "hey", "thanks", "you", "bye", "goodbye", "morning", "afternoon", "evening", "sorry", "okay",
    "ok", "sure", "great", "perfect", "alright", "welcome", "yes", "no", "well", "dear", "congratulations",
    "with", "night", "day", "care", "soon",
];
