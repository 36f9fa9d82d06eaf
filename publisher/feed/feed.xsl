<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shows publisher's Atom and RSS feeds as a readable page when someone opens them in a
  browser (linked from each feed by an xml-stylesheet processing instruction). Feed readers
  ignore it. XSLT 1.0 only: that is what browsers run. Kept for the browsers that still run
  XSLT (Firefox, Safari); Chromium is removing it, so index.html and tags/*.html beside the
  feeds are the pages a person is sent to, and this one links there.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="atom:feed/atom:title | rss/channel/title"/>
    <xsl:variable name="home" select="atom:feed/atom:link[@rel='alternate']/@href | rss/channel/link"/>
    <xsl:variable name="self" select="atom:feed/atom:link[@rel='self']/@href | rss/channel/atom:link[@rel='self']/@href"/>
    <!-- the feeds folder's index.html: the self link up to its folder, or up from tags/ and archive/ -->
    <xsl:variable name="page">
      <xsl:choose>
        <xsl:when test="contains($self, '/tags/')"><xsl:value-of select="substring-before($self, '/tags/')"/>/index.html</xsl:when>
        <xsl:when test="contains($self, '/archive/')"><xsl:value-of select="substring-before($self, '/archive/')"/>/index.html</xsl:when>
        <xsl:otherwise>index.html</xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <html lang="{atom:feed/@xml:lang | rss/channel/language}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <style>
          body { margin: 0; font-family: Georgia, 'Times New Roman', serif; color: #1f2937; background: #f4f4f5; }
          main { max-width: 42rem; margin: 0 auto; padding: 1.5rem; background: #fff; min-height: 100vh; }
          .hint { font-family: Helvetica, Arial, sans-serif; font-size: 0.95rem; background: #eff6ff; border: 1px solid #bfdbfe; border-radius: 6px; padding: 0.8rem 1rem; margin-bottom: 1.5rem; }
          .hint strong { display: block; margin-bottom: 0.3rem; }
          h1 { font-size: 2rem; margin: 0 0 0.2rem 0; }
          .home { font-family: Helvetica, Arial, sans-serif; font-size: 0.9rem; }
          article { border-top: 1px solid #e5e7eb; padding: 1rem 0; }
          article h2 { font-size: 1.3rem; margin: 0 0 0.2rem 0; }
          a { color: #1d4ed8; }
          article h2 a { color: #111827; text-decoration: none; }
          .meta { font-family: Helvetica, Arial, sans-serif; font-size: 0.85rem; color: #6b7280; }
          p.summary { line-height: 1.55; margin: 0.4rem 0 0 0; }
        </style>
      </head>
      <body>
        <main>
          <div class="hint">
            <strong>This is a web feed.</strong>
            Subscribe by copying the address from your browser's address bar into your feed reader.
            New articles then come to you, no email or account needed.
          </div>
          <h1><xsl:value-of select="$title"/></h1>
          <p class="home"><a href="{$home}">Visit the website</a> · <a href="{$page}">All feeds</a></p>
          <xsl:apply-templates select="atom:feed/atom:entry | rss/channel/item"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h2><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h2>
      <div class="meta">
        <xsl:value-of select="atom:author/atom:name"/> · <xsl:value-of select="substring(atom:published, 1, 10)"/>
      </div>
      <p class="summary"><xsl:value-of select="atom:summary"/></p>
    </article>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h2><a href="{link}"><xsl:value-of select="title"/></a></h2>
      <div class="meta">
        <xsl:value-of select="dc:creator"/> · <xsl:value-of select="substring(pubDate, 6, 11)"/>
      </div>
      <!-- RSS's description is HTML (publisher writes the plain summary escaped into it), so
           it is output as HTML, not escaped a second time; the Atom summary is text. -->
      <p class="summary"><xsl:value-of select="description" disable-output-escaping="yes"/></p>
    </article>
  </xsl:template>
</xsl:stylesheet>
