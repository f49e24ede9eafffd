"""The eval set's text: the topics, task templates and instruction wordings its prompts are composed from.

Data, not code: :mod:`cleanroom.ifeval.evalset` draws a task template, a topic and one to three
instructions for each prompt, and words each instruction with its eval or its pool wording. The eval set
and the SFT pool use different task templates and different wordings of every instruction, and alternate
topics, so the two are disjoint by construction. This module's source is part of the generator's digest
(:data:`cleanroom.ifeval.evalset.GENERATOR_DIGEST`): a changed template is a changed eval set.
"""

from __future__ import annotations

# The topics as text, ';'-separated (data, not code); alternate topics go to the eval set and the pool.
TOPICS = [topic.strip() for topic in """
city gardens; the history of maps; learning to swim; rainy weekends; a small bakery; bicycle repair
night trains; public libraries; mountain weather; saving money; ocean tides; a school science fair
birds in winter; old radios; planting trees; team sports; cooking rice; a museum visit; desert plants
sleep habits; street markets; the first telephone; home composting; river boats; a quiet morning
paper airplanes; solar panels; board games; a lost umbrella; coral reefs; the moon landing; honey bees
a neighborhood festival; learning a new language; volcano safety; tea ceremonies; a long hike
recycling glass; the printing press; kite flying; snow days; a family recipe; lighthouses; electric cars
pottery; a first job interview; train stations; wild mushrooms; a broken clock; space telescopes
village wells; chess openings; a summer camp; the water cycle; hot air balloons; farm animals
a rainy commute; ancient roads; public parks; desk plants; wind turbines; a birthday party
fishing villages; the metric system; night skies; bread baking; a talent show; mountain lakes
book clubs; sea turtles; paper money; a garden shed; marathon training; city buses; handwritten letters
a thunderstorm; orchards; the invention of glass; a flea market; penguins
""".replace("\n", ";").split(";") if topic.strip()]

EVAL_TASKS = [
    "Write a short essay about {topic}.",
    "Write a blog post about {topic} for curious readers.",
    "Describe {topic} to a ten year old.",
    "Write a story that takes place around {topic}.",
    "Give advice to someone who wants to learn about {topic}.",
    "Write a newsletter item about {topic}.",
]
POOL_TASKS = [
    "Compose a brief article on {topic}.",
    "Explain {topic} to a new neighbor.",
    "Draft a speech for a town meeting on {topic}.",
    "Tell a tale set among {topic}.",
    "List reasons people enjoy {topic} and explain them.",
    "Prepare notes for a class discussion on {topic}.",
]

# Words the teacher never writes, so "forbidden"/"less than" instructions on them are satisfiable.
KEYWORDS = ["lantern", "harvest", "compass", "meadow", "ribbon", "pebble", "thunder", "velvet",
            "orchid", "saddle", "marble", "canyon", "puddle", "tandem", "cobalt", "summit"]
FIRST_WORDS = ["today", "meanwhile", "finally", "honestly", "sometimes", "often", "later", "after"]
END_PHRASES = ["That is all for now.", "Thank you for reading.", "Let me know if you have more."]
RARE_LETTERS = ["q", "z", "x", "j"]
COMMON_LETTERS = ["a", "e", "o", "t", "n", "s", "r", "l"]

# instruction id -> (eval wording, pool wording); {name} fields come from the kwargs.
WORDINGS: dict[str, tuple[str, str]] = {
    "change_case:capital_word_frequency": (
        "Words in all capital letters should appear {capital_relation} {capital_frequency} times.",
        "Make sure the count of fully capitalized words is {capital_relation} {capital_frequency}.",
    ),
    "change_case:english_capital": (
        "Your entire answer must be in English and in capital letters only.",
        "Reply in English using uppercase letters throughout.",
    ),
    "change_case:english_lowercase": (
        "Your whole answer must be in English and written in lowercase letters only.",
        "Use only lowercase English letters in the reply; capitals are not allowed.",
    ),
    "combination:repeat_prompt": (
        "First repeat the request above word for word and then give your answer.",
        "Begin by copying my request exactly before you answer it.",
    ),
    "combination:two_responses": (
        "Give two different answers separated by six asterisks like this: ******.",
        "Provide a pair of distinct replies with ****** between them.",
    ),
    "detectable_content:number_placeholders": (
        "Include at least {num_placeholders} placeholders in square brackets such as [name].",
        "Leave {num_placeholders} or more blanks written in square brackets like [date].",
    ),
    "detectable_content:postscript": (
        "End with a postscript that starts with {postscript_marker}",
        "Add a final note beginning with {postscript_marker}",
    ),
    "detectable_format:constrained_response": (
        "Start your answer with one of these options: My answer is yes. / My answer is no. / My answer is maybe.",
        "Include exactly one of the phrases My answer is yes. or My answer is no. or My answer is maybe.",
    ),
    "detectable_format:json_format": (
        "Wrap the whole output in valid JSON.",
        "Return the entire reply as a JSON object.",
    ),
    "detectable_format:multiple_sections": (
        "Split the answer into {num_sections} sections and start each one with {section_spliter} X.",
        "Organize the reply as {num_sections} parts marked {section_spliter} 1 and {section_spliter} 2 and so on.",
    ),
    "detectable_format:number_bullet_lists": (
        "Use exactly {num_bullets} markdown bullet points such as * this point.",
        "Your reply needs precisely {num_bullets} bullets written with an asterisk.",
    ),
    "detectable_format:number_highlighted_sections": (
        "Highlight at least {num_highlights} parts with markdown such as *highlighted part*.",
        "Mark {num_highlights} or more phrases in italics using single asterisks.",
    ),
    "detectable_format:title": (
        "Give the answer a title in double angular brackets such as <<my title>>.",
        "Put a heading wrapped in << and >> at the top.",
    ),
    "keywords:existence": (
        "Mention the words {keywords_text} somewhere in the answer.",
        "Be sure to use the terms {keywords_text}.",
    ),
    "keywords:forbidden_words": (
        "Do not use the words {forbidden_text} anywhere.",
        "Avoid the terms {forbidden_text} completely.",
    ),
    "keywords:frequency": (
        "The word {keyword} should appear {relation} {frequency} times.",
        "Use the term {keyword} {relation} {frequency} times in total.",
    ),
    "keywords:letter_frequency": (
        "The letter {letter} should appear {let_relation} {let_frequency} times.",
        "Make the character {letter} occur {let_relation} {let_frequency} times.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        "Write {num_paragraphs} paragraphs separated by blank lines and start paragraph {nth_paragraph} with the word {first_word}.",
        "Use {num_paragraphs} blocks of text divided by empty lines; block {nth_paragraph} must open with {first_word}.",
    ),
    "length_constraints:number_paragraphs": (
        "Write exactly {num_paragraphs} paragraphs separated by the markdown divider ***.",
        "The reply must have {num_paragraphs} paragraphs with *** between them.",
    ),
    "length_constraints:number_sentences": (
        "Your answer should contain {relation} {num_sentences} sentences.",
        "Keep the sentence count {relation} {num_sentences}.",
    ),
    "length_constraints:number_words": (
        "Answer with {relation} {num_words} words.",
        "The reply should run {relation} {num_words} words.",
    ),
    "punctuation:no_comma": (
        "Do not use any commas.",
        "Refrain from commas entirely.",
    ),
    "startend:end_checker": (
        "Finish with the exact phrase {end_phrase} and nothing after it.",
        "The final words of the reply must be {end_phrase}",
    ),
    "startend:quotation": (
        "Wrap the entire answer in double quotation marks.",
        "Put the whole reply inside double quotes.",
    ),
}

GENERATED_TYPES: tuple[str, ...] = tuple(sorted(WORDINGS))


__all__ = ["COMMON_LETTERS", "END_PHRASES", "EVAL_TASKS", "FIRST_WORDS", "GENERATED_TYPES", "KEYWORDS", "POOL_TASKS",
           "RARE_LETTERS", "TOPICS", "WORDINGS"]
