// Ready-made texts: plain text and one example per SSML tag the service supports
// (see the README's SSML table; synthesis/ssml.py is the reference).

export function examples({ voice, language }) {
  const other = language === "de" ? "fr" : "de";
  return [
    {
      id: "plain",
      label: "Plain text with numbers and dates",
      text: "On 3 March 2025 at 9:30, 42 people paid $19.99 each. Normalisation reads these as words.",
    },
    {
      id: "break",
      label: "<break>: pauses",
      text: '<speak>Wait for it.<break time="800ms"/>Now! A strong pause,<break strength="strong"/>and on.</speak>',
    },
    {
      id: "prosody",
      label: "<prosody>: rate, pitch, volume",
      text: '<speak><prosody rate="slow" pitch="-2st">Slow and a little lower.</prosody> <prosody rate="fast" pitch="+3st" volume="loud">Quick, high and loud!</prosody></speak>',
    },
    {
      id: "emphasis",
      label: "<emphasis>: stress",
      text: '<speak>This is <emphasis level="strong">really</emphasis> important, and this is <emphasis level="reduced">less so</emphasis>.</speak>',
    },
    {
      id: "say-as",
      label: "<say-as>: digits, dates, ordinals",
      text: '<speak>Your code is <say-as interpret-as="digits">4711</say-as>. It expires on <say-as interpret-as="date" format="dmy">31/12/2025</say-as>, your <say-as interpret-as="ordinal">3</say-as> reminder. Spell it: <say-as interpret-as="characters">TTS</say-as>.</speak>',
    },
    {
      id: "sub",
      label: "<sub>: speak an alias",
      text: '<speak>Send it to <sub alias="the World Wide Web Consortium">W3C</sub> today.</speak>',
    },
    {
      id: "p-s",
      label: "<p> and <s>: paragraphs and sentences",
      text: "<speak><p><s>First paragraph, first sentence.</s><s>And the second.</s></p><p><s>A new paragraph after a longer pause.</s></p></speak>",
    },
    {
      id: "lang",
      label: "<lang>: switch language",
      text: `<speak>In English, then <lang xml:lang="${other}">${other === "de" ? "Guten Tag, wie geht es Ihnen?" : "Bonjour, comment allez-vous ?"}</lang></speak>`,
    },
    {
      id: "voice",
      label: "<voice>: switch voice",
      text: `<speak>The default voice starts. <voice name="${voice}">And this part is read by ${voice}.</voice></speak>`,
    },
    {
      id: "mark",
      label: "<mark>: events for streaming clients",
      text: '<speak>Here comes a mark.<mark name="after-intro"/> Doors that carry events report it.</speak>',
    },
  ];
}
